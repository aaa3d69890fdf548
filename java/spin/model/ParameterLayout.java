package spin.model;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Where each weight lives in the one flat parameter buffer: HF name, shape and element offset.
 *
 * <p>One buffer makes ZeRO shards plain offset ranges and the optimizer a loop over one array.
 * Order: embeddings; per layer input norm, q, k, v, o, post-attention norm, gate, up, down; final
 * norm; lm_head (absent when tied to the embeddings).
 */
public final class ParameterLayout {

    /** One weight: its HF name, shape and first element in the flat buffer. */
    public record Slot(String name, int[] shape, long offset) {
        public long size() {
            long n = 1;
            for (int d : shape) {
                n *= d;
            }
            return n;
        }
    }

    private final Map<String, Slot> slots;
    private final long totalSize;

    public ParameterLayout(MistralConfig config) {
        Map<String, Slot> map = new LinkedHashMap<>();
        long[] offset = {0};
        int c = config.hiddenSize(), f = config.intermediateSize();
        java.util.function.BiConsumer<String, int[]> add = (name, shape) -> {
            Slot s = new Slot(name, shape, offset[0]);
            map.put(name, s);
            offset[0] += s.size();
        };
        add.accept(Names.EMBED, new int[] {config.vocabSize(), c});
        for (int l = 0; l < config.numHiddenLayers(); l++) {
            add.accept(Names.inputNorm(l), new int[] {c});
            add.accept(Names.q(l), new int[] {config.queryDim(), c});
            add.accept(Names.k(l), new int[] {config.keyValueDim(), c});
            add.accept(Names.v(l), new int[] {config.keyValueDim(), c});
            add.accept(Names.o(l), new int[] {c, config.queryDim()});
            add.accept(Names.postAttentionNorm(l), new int[] {c});
            add.accept(Names.gate(l), new int[] {f, c});
            add.accept(Names.up(l), new int[] {f, c});
            add.accept(Names.down(l), new int[] {c, f});
        }
        add.accept(Names.FINAL_NORM, new int[] {c});
        if (!config.tieWordEmbeddings()) {
            add.accept(Names.LM_HEAD, new int[] {config.vocabSize(), c});
        }
        this.slots = Collections.unmodifiableMap(map);
        this.totalSize = offset[0];
    }

    private ParameterLayout(Map<String, Slot> slots, long totalSize) {
        this.slots = Collections.unmodifiableMap(slots);
        this.totalSize = totalSize;
    }

    /**
     * A layout of explicit slots over a buffer of {@code totalSize} elements: a ZeRO-3 rank's shard,
     * whose slots are the pieces of each weight it owns (1-D, under the weight's HF name).
     *
     * @throws IllegalArgumentException when two slots share a name or a slot leaves the buffer
     */
    public static ParameterLayout of(List<Slot> slots, long totalSize) {
        Map<String, Slot> map = new LinkedHashMap<>();
        for (Slot s : slots) {
            if (s.offset() < 0 || s.offset() + s.size() > totalSize) {
                throw new IllegalArgumentException("slot " + s.name() + " at " + s.offset() + " of " + s.size()
                        + " elements leaves a buffer of " + totalSize);
            }
            if (map.put(s.name(), s) != null) {
                throw new IllegalArgumentException("two slots are named " + s.name());
            }
        }
        return new ParameterLayout(map, totalSize);
    }

    /**
     * Whether HF's Mistral weight {@code name} is a matrix (projections, embeddings, lm_head) rather
     * than a norm's vector: by name, so that it holds for a ZeRO-3 shard's 1-D pieces too.
     */
    public static boolean isMatrix(String name) {
        return !name.endsWith("layernorm.weight") && !name.equals(Names.FINAL_NORM);
    }

    public Slot slot(String name) {
        Slot s = slots.get(name);
        if (s == null) {
            throw new IllegalArgumentException("no parameter named " + name);
        }
        return s;
    }

    public boolean has(String name) {
        return slots.containsKey(name);
    }

    public List<Slot> slots() {
        return new ArrayList<>(slots.values());
    }

    /** Total number of parameters. */
    public long totalSize() {
        return totalSize;
    }

    /** HF parameter names. */
    public static final class Names {
        public static final String EMBED = "model.embed_tokens.weight";
        public static final String FINAL_NORM = "model.norm.weight";
        public static final String LM_HEAD = "lm_head.weight";

        private Names() {}

        private static String layer(int l, String rest) {
            return "model.layers." + l + "." + rest;
        }

        public static String inputNorm(int l) {
            return layer(l, "input_layernorm.weight");
        }

        public static String q(int l) {
            return layer(l, "self_attn.q_proj.weight");
        }

        public static String k(int l) {
            return layer(l, "self_attn.k_proj.weight");
        }

        public static String v(int l) {
            return layer(l, "self_attn.v_proj.weight");
        }

        public static String o(int l) {
            return layer(l, "self_attn.o_proj.weight");
        }

        public static String postAttentionNorm(int l) {
            return layer(l, "post_attention_layernorm.weight");
        }

        public static String gate(int l) {
            return layer(l, "mlp.gate_proj.weight");
        }

        public static String up(int l) {
            return layer(l, "mlp.up_proj.weight");
        }

        public static String down(int l) {
            return layer(l, "mlp.down_proj.weight");
        }
    }
}
