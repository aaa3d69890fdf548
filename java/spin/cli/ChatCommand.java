package spin.cli;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import spin.backend.FrozenWeights;
import spin.backend.Backend;
import spin.generate.BatchGenerator;
import spin.generate.Generation;
import spin.generate.GenerationListener;
import spin.generate.GenerationRequest;
import spin.generate.StopCriteria;
import spin.model.KvCache;
import spin.model.MistralConfig;
import spin.model.MistralModel;
import spin.model.ModelCheckpoint;
import spin.text.Tokenizer;

/**
 * {@code spin chat}: try a model by hand. Each line read from standard input is one question,
 * prompted and answered exactly as {@code spin generate} would (same prompt format, sampling and
 * cleaning); the answer is printed when it is complete. Lines are independent: there is no history.
 */
@Command(name = "chat", mixinStandardHelpOptions = true,
        description = "Answer questions read from standard input, one per line, with the model (CPU).")
public final class ChatCommand implements Callable<Integer> {
    @Spec
    private CommandSpec spec;

    @Option(names = "--model", required = true, description = "HF model directory with config.json, weights and tokenizer files")
    private Path model;

    @Mixin
    private GenerationOptions options;

    @Mixin
    private DeviceOptions device;

    @Override
    @SuppressWarnings("try") // the frozen weights are held, not used, in the body
    public Integer call() throws Exception {
        options.validate();
        options.validate(MistralConfig.read(model), model);
        PrintWriter out = spec.commandLine().getOut();
        boolean terminal = System.console() != null;
        try (Tokenizer tokenizer = Tokenizer.load(model);
                Backend backend = device.open();
                MistralModel m = ModelCheckpoint.loadForInference(model, backend);
                KvCache cache = options.cache(m.config(), backend, GenerationOptions.blocksFor(m.config().maxPositionEmbeddings()));
                // Frozen for the whole session, so weights packed for one answer serve the next ones too.
                FrozenWeights frozen = m.freezeWeights()) {
            GenerationOptions.requireCompatible(tokenizer, m.config(), model);
            BatchGenerator generator = options.generator(m, cache, tokenizer);
            StopCriteria stop = options.stop(m.config(), tokenizer);
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            long number = 0;
            while (true) {
                if (terminal) {
                    out.print("> ");
                    out.flush();
                }
                String line = in.readLine();
                if (line == null) {
                    break;
                }
                if (line.isBlank()) {
                    continue;
                }
                int[] prompt = options.promptTokens(tokenizer, options.format().render(line, tokenizer.chatTemplate()));
                Generation answer = generator.generate(List.of(new GenerationRequest(number++, prompt)), GenerationListener.NONE)
                        .get(0);
                out.println(options.answerText(answer.tokens(), tokenizer, stop));
                out.flush();
            }
        }
        return 0;
    }
}
