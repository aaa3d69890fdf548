package spin.text;

import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.interpret.RenderResult;
import com.hubspot.jinjava.interpret.TemplateError;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * An HF chat template (Jinja) rendered the way transformers' {@code apply_chat_template} does:
 * trim_blocks and lstrip_blocks on, the variables {@code messages}, {@code add_generation_prompt},
 * the special tokens ({@code bos_token}, {@code eos_token}, ...) and the function
 * {@code raise_exception(message)}.
 */
public final class ChatTemplate {
    /**
     * The template of HuggingFaceH4/zephyr-7b-beta and alignment-handbook's default, which the SPIN
     * reference uses when the tokenizer has none. Every turn renders as {@code <|role|>\n{content}</s>\n}
     * and the generation prompt as {@code <|assistant|>\n}.
     */
    public static final String ZEPHYR = "{% for message in messages %}\n"
            + "{% if message['role'] == 'user' %}\n"
            + "{{ '<|user|>\n' + message['content'] + eos_token }}\n"
            + "{% elif message['role'] == 'system' %}\n"
            + "{{ '<|system|>\n' + message['content'] + eos_token }}\n"
            + "{% elif message['role'] == 'assistant' %}\n"
            + "{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
            + "{% endif %}\n"
            + "{% if loop.last and add_generation_prompt %}\n"
            + "{{ '<|assistant|>' }}\n"
            + "{% endif %}\n"
            + "{% endfor %}";

    private final String source;
    private final Map<String, String> specialTokens;
    private final Jinjava jinja;

    /**
     * @param source the Jinja text
     * @param specialTokens names such as {@code eos_token} mapped to their text; they become template variables
     */
    public ChatTemplate(String source, Map<String, String> specialTokens) {
        this.source = source;
        this.specialTokens = Map.copyOf(specialTokens);
        // Nested interpretation would render "{{ ... }}" found inside message content as Jinja:
        // user text must come out verbatim, as it does in Python's jinja2.
        JinjavaConfig config = JinjavaConfig.newBuilder()
                .withTrimBlocks(true)
                .withLstripBlocks(true)
                .withNestedInterpretationEnabled(false)
                .build();
        this.jinja = new Jinjava(config);
        jinja.getGlobalContext().registerFunction(new ELFunctionDefinition("", "raise_exception",
                ChatTemplate.class, "raiseException", String.class));
    }

    public String source() {
        return source;
    }

    /** Renders {@code messages}; with {@code addGenerationPrompt} the template appends the assistant's cue. */
    public String render(List<ChatMessage> messages, boolean addGenerationPrompt) {
        List<Map<String, Object>> turns = new ArrayList<>(messages.size());
        for (ChatMessage m : messages) {
            Map<String, Object> turn = new LinkedHashMap<>();
            turn.put("role", m.role());
            turn.put("content", m.content());
            turns.add(turn);
        }
        Map<String, Object> context = new HashMap<>(specialTokens);
        context.put("messages", turns);
        context.put("add_generation_prompt", addGenerationPrompt);
        RenderResult result = jinja.renderForResult(source, context);
        for (TemplateError error : result.getErrors()) {
            if (error.getSeverity() == TemplateError.ErrorType.FATAL) {
                throw new IllegalArgumentException("chat template: " + describe(error));
            }
        }
        return result.getOutput();
    }

    private static String describe(TemplateError error) {
        for (Throwable t = error.getException(); t != null; t = t.getCause()) {
            if (t instanceof TemplateRaisedException raised) {
                return raised.getMessage();
            }
        }
        return error.getMessage() + " (line " + error.getLineno() + ")";
    }

    /** The {@code raise_exception} function HF provides to templates; public for Jinjava's reflection. */
    public static String raiseException(String message) {
        throw new TemplateRaisedException(message);
    }

    private static final class TemplateRaisedException extends RuntimeException {
        TemplateRaisedException(String message) {
            super(message);
        }
    }
}
