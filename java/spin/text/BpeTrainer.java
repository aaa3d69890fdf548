package spin.text;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Learns a sentencepiece-style BPE vocabulary: text is normalised as Llama/Mistral tokenizers do
 * (spaces become {@code ▁}, one {@code ▁} is prepended), words start at each {@code ▁}, the most
 * frequent characters become tokens, then the most frequent adjacent pair is merged until the
 * vocabulary is full. Characters left out are encoded by byte fallback. Ties are broken by the
 * pair's text, so the result depends only on the corpus.
 */
public final class BpeTrainer {
    /** The word-boundary marker of sentencepiece, which stands for a space. */
    public static final String SPACE = "\u2581";

    private BpeTrainer() {}

    /** A merge rule: the adjacent tokens {@code left right} become {@code left + right}. */
    public record Merge(String left, String right) {}

    /** @param tokens every token in id order; @param merges in priority order */
    public record BpeModel(List<String> tokens, List<Merge> merges) {}

    /**
     * @param fixedTokens tokens that take the first ids (special and byte tokens)
     * @param corpus lines of training text
     * @param vocabSize the size to grow to; fewer when the corpus runs out of repeated pairs
     */
    public static BpeModel train(List<String> fixedTokens, List<String> corpus, int vocabSize) {
        if (vocabSize < fixedTokens.size()) {
            throw new IllegalArgumentException("vocabulary of " + vocabSize + " cannot hold the " + fixedTokens.size() + " fixed tokens");
        }
        Map<List<String>, Integer> words = countWords(corpus);
        List<String> tokens = new ArrayList<>(fixedTokens);
        Map<String, Integer> ids = new HashMap<>();
        for (String t : tokens) {
            ids.put(t, ids.size());
        }
        for (String c : charactersByFrequency(words)) {
            if (tokens.size() == vocabSize) {
                break;
            }
            if (!ids.containsKey(c)) {
                ids.put(c, tokens.size());
                tokens.add(c);
            }
        }
        List<Merge> merges = new ArrayList<>();
        List<List<String>> symbols = new ArrayList<>();
        List<Integer> counts = new ArrayList<>();
        words.forEach((w, n) -> {
            symbols.add(new ArrayList<>(w));
            counts.add(n);
        });
        while (tokens.size() < vocabSize) {
            Map<Merge, Integer> pairs = new HashMap<>();
            for (int w = 0; w < symbols.size(); w++) {
                List<String> s = symbols.get(w);
                for (int i = 0; i + 1 < s.size(); i++) {
                    if (ids.containsKey(s.get(i)) && ids.containsKey(s.get(i + 1))) {
                        pairs.merge(new Merge(s.get(i), s.get(i + 1)), counts.get(w), Integer::sum);
                    }
                }
            }
            Merge best = null;
            int bestCount = 1; // a pair seen once compresses nothing worth a token
            for (Map.Entry<Merge, Integer> e : pairs.entrySet()) {
                if (e.getValue() > bestCount || e.getValue() == bestCount && best != null && before(e.getKey(), best)) {
                    best = e.getKey();
                    bestCount = e.getValue();
                }
            }
            if (best == null) {
                break;
            }
            merges.add(best);
            String joined = best.left() + best.right();
            if (!ids.containsKey(joined)) {
                ids.put(joined, tokens.size());
                tokens.add(joined);
            }
            for (List<String> s : symbols) {
                apply(best, s);
            }
        }
        return new BpeModel(List.copyOf(tokens), List.copyOf(merges));
    }

    private static boolean before(Merge a, Merge b) {
        int c = a.left().compareTo(b.left());
        return c < 0 || c == 0 && a.right().compareTo(b.right()) < 0;
    }

    private static void apply(Merge merge, List<String> s) {
        for (int i = 0; i + 1 < s.size(); i++) {
            if (s.get(i).equals(merge.left()) && s.get(i + 1).equals(merge.right())) {
                s.set(i, merge.left() + merge.right());
                s.remove(i + 1);
            }
        }
    }

    /** Words as lists of characters (code points), each starting at a {@code ▁}, with their counts. */
    private static Map<List<String>, Integer> countWords(List<String> corpus) {
        Map<List<String>, Integer> words = new LinkedHashMap<>();
        for (String line : corpus) {
            String normalized = SPACE + line.replace(" ", SPACE);
            for (String word : normalized.split("(?=" + SPACE + ")")) {
                if (!word.isEmpty()) {
                    words.merge(word.codePoints().mapToObj(Character::toString).toList(), 1, Integer::sum);
                }
            }
        }
        return words;
    }

    private static List<String> charactersByFrequency(Map<List<String>, Integer> words) {
        Map<String, Integer> counts = new HashMap<>();
        words.forEach((w, n) -> w.forEach(c -> counts.merge(c, n, Integer::sum)));
        return counts.entrySet().stream()
                .sorted(Map.Entry.<String, Integer>comparingByValue(Comparator.reverseOrder())
                        .thenComparing(Map.Entry.comparingByKey()))
                .map(Map.Entry::getKey)
                .toList();
    }
}
