package spin.text;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.List;
import org.junit.jupiter.api.Test;
import spin.text.BpeTrainer.Merge;

class BpeTrainerTest {
    private static final String S = BpeTrainer.SPACE;

    @Test
    void mergesTheMostFrequentPairFirstAndBreaksTiesByText() {
        // Words: ▁ab x3, ▁abc x1, ▁b x1. Pairs: (▁,a) 4, (a,b) 4, (b,c) 1, (▁,b) 1.
        // The tie between (▁,a) and (a,b) goes to the smaller text: "▁" (U+2581) sorts after "a".
        BpeTrainer.BpeModel model = BpeTrainer.train(List.of("<unk>"), List.of("ab ab ab", "abc b"), 8);
        // Characters by frequency (▁ 5, b 5, a 4, c 1), ties by text: b before ▁.
        assertEquals(List.of("<unk>", "b", S, "a", "c", "ab", S + "ab"), model.tokens().subList(0, 7));
        assertEquals(List.of(new Merge("a", "b"), new Merge(S, "ab")), model.merges().subList(0, 2));
        assertEquals(7, model.tokens().size(), "no pair is left that occurs twice");
    }

    @Test
    void stopsAtTheRequestedSizeAndKeepsRareCharactersOutWhenFull() {
        BpeTrainer.BpeModel model = BpeTrainer.train(List.of("<unk>", "<s>"), List.of("aaa bbb aaa z"), 4);
        assertEquals(List.of("<unk>", "<s>", "a", S), model.tokens());
        assertEquals(List.of(), model.merges());
        assertThrows(IllegalArgumentException.class, () -> BpeTrainer.train(List.of("<unk>", "<s>"), List.of("a"), 1));
    }

    @Test
    void theSameCorpusGivesTheSameModel() {
        List<String> corpus = DemoTokenizer.CORPUS.lines().toList();
        assertEquals(BpeTrainer.train(List.of("<unk>"), corpus, 300), BpeTrainer.train(List.of("<unk>"), corpus, 300));
    }
}
