package spin.text;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.List;

/**
 * Writes a BPE model as an HF {@code tokenizer.json} in the layout transformers gives Llama and
 * Mistral tokenizers converted from sentencepiece (legacy mode): normaliser "prepend ▁, spaces to
 * ▁", no pre-tokeniser, byte fallback, a decoder that undoes all of it, and a post-processor that
 * adds BOS when special tokens are requested. So the tiny tokenizer behaves like Mistral's,
 * including the {@code ▁} that legacy mode puts after every special token in the text.
 */
public final class LlamaTokenizerJson {
    private static final ObjectMapper JSON = new ObjectMapper();

    private LlamaTokenizerJson() {}

    /**
     * @param model tokens in id order; the first {@code specialTokens.size()} are the special tokens
     * @param specialTokens e.g. {@code <unk>, <s>, </s>}
     * @param unkToken the token for text that neither the vocabulary nor byte fallback covers
     * @param bosToken prepended by the post-processor
     */
    public static String toJson(BpeTrainer.BpeModel model, List<String> specialTokens, String unkToken, String bosToken) {
        for (int i = 0; i < specialTokens.size(); i++) {
            if (!model.tokens().get(i).equals(specialTokens.get(i))) {
                throw new IllegalArgumentException("special token " + specialTokens.get(i) + " must have id " + i);
            }
        }
        ObjectNode root = JSON.createObjectNode();
        root.put("version", "1.0");
        root.putNull("truncation");
        root.putNull("padding");
        ArrayNode added = root.putArray("added_tokens");
        for (int i = 0; i < specialTokens.size(); i++) {
            added.addObject().put("id", i).put("content", specialTokens.get(i)).put("single_word", false)
                    .put("lstrip", false).put("rstrip", false).put("normalized", false).put("special", true);
        }
        ObjectNode normalizer = root.putObject("normalizer").put("type", "Sequence");
        ArrayNode normalizers = normalizer.putArray("normalizers");
        normalizers.addObject().put("type", "Prepend").put("prepend", BpeTrainer.SPACE);
        replace(normalizers.addObject(), " ", BpeTrainer.SPACE);
        root.putNull("pre_tokenizer");
        ObjectNode post = root.putObject("post_processor").put("type", "TemplateProcessing");
        ArrayNode single = post.putArray("single");
        single.addObject().putObject("SpecialToken").put("id", bosToken).put("type_id", 0);
        single.addObject().putObject("Sequence").put("id", "A").put("type_id", 0);
        ArrayNode pair = post.putArray("pair");
        pair.addObject().putObject("SpecialToken").put("id", bosToken).put("type_id", 0);
        pair.addObject().putObject("Sequence").put("id", "A").put("type_id", 0);
        pair.addObject().putObject("SpecialToken").put("id", bosToken).put("type_id", 1);
        pair.addObject().putObject("Sequence").put("id", "B").put("type_id", 1);
        ObjectNode bos = post.putObject("special_tokens").putObject(bosToken).put("id", bosToken);
        bos.putArray("ids").add(model.tokens().indexOf(bosToken));
        bos.putArray("tokens").add(bosToken);
        ObjectNode decoder = root.putObject("decoder").put("type", "Sequence");
        ArrayNode decoders = decoder.putArray("decoders");
        replace(decoders.addObject(), BpeTrainer.SPACE, " ");
        decoders.addObject().put("type", "ByteFallback");
        decoders.addObject().put("type", "Fuse");
        decoders.addObject().put("type", "Strip").put("content", " ").put("start", 1).put("stop", 0);
        ObjectNode bpe = root.putObject("model").put("type", "BPE");
        bpe.putNull("dropout");
        bpe.put("unk_token", unkToken);
        bpe.putNull("continuing_subword_prefix");
        bpe.putNull("end_of_word_suffix");
        bpe.put("fuse_unk", true);
        bpe.put("byte_fallback", true);
        ObjectNode vocab = bpe.putObject("vocab");
        for (int i = 0; i < model.tokens().size(); i++) {
            vocab.put(model.tokens().get(i), i);
        }
        ArrayNode merges = bpe.putArray("merges");
        for (BpeTrainer.Merge m : model.merges()) {
            merges.add(m.left() + " " + m.right());
        }
        try {
            return JSON.writerWithDefaultPrettyPrinter().writeValueAsString(root) + "\n";
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    private static void replace(ObjectNode node, String from, String to) {
        node.put("type", "Replace");
        node.putObject("pattern").put("String", from);
        node.put("content", to);
    }
}
