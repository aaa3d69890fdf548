package spin.text;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import spin.io.AtomicFiles;

/**
 * The small tokenizer of the tiny model and the tests: a byte-fallback BPE in Mistral's layout
 * (ids 0, 1, 2 are {@code <unk>}, {@code <s>}, {@code </s>}; ids 3..258 the bytes
 * {@code <0x00>}..{@code <0xFF>}) whose characters and merges are learned from a built-in English
 * corpus with chat-template markers, digits and arithmetic. Any text encodes: what the vocabulary
 * lacks falls back to bytes. Its chat template is zephyr's.
 */
public final class DemoTokenizer {
    public static final String UNK = "<unk>";
    public static final String BOS = "<s>";
    public static final String EOS = "</s>";
    /** The tiny model's vocab_size. */
    public static final int DEFAULT_VOCAB_SIZE = 512;

    private DemoTokenizer() {}

    /** Writes tokenizer.json and tokenizer_config.json into {@code dir}, each atomically. */
    public static void write(Path dir, int vocabSize, int modelMaxLength) throws IOException {
        List<String> specials = List.of(UNK, BOS, EOS);
        List<String> fixed = new ArrayList<>(specials);
        for (int b = 0; b < 256; b++) {
            fixed.add(String.format("<0x%02X>", b));
        }
        BpeTrainer.BpeModel model = BpeTrainer.train(fixed, CORPUS.lines().toList(), vocabSize);
        AtomicFiles.writeString(dir.resolve(Tokenizer.FILE_NAME), LlamaTokenizerJson.toJson(model, specials, UNK, BOS));
        TokenizerConfig config = new TokenizerConfig(BOS, EOS, UNK, null, ChatTemplate.ZEPHYR);
        AtomicFiles.writeString(dir.resolve(TokenizerConfig.FILE_NAME), config.toJson(modelMaxLength));
    }

    /** Training text: plain English, the zephyr turn markers, numbers and sums. */
    static final String CORPUS = """
            <|system|>
            <|user|>
            <|assistant|>
            <|user|> What is the capital of France? <|assistant|> The capital of France is Paris.
            <|user|> Can you write a short poem about the sea? <|assistant|> The sea is wide and the waves are blue.
            <|user|> How do I make a cup of tea? <|assistant|> Boil the water, add the tea, and wait for three minutes.
            <|user|> What is 12 + 7? <|assistant|> 12 + 7 = 19.
            <|user|> What is 45 - 18? <|assistant|> 45 - 18 = 27.
            <|user|> What is 6 * 8? <|assistant|> 6 * 8 = 48.
            <|user|> What is 81 / 9? <|assistant|> 81 / 9 = 9.
            <|user|> Count from one to ten. <|assistant|> one, two, three, four, five, six, seven, eight, nine, ten
            <|user|> Spell the word cat backwards. <|assistant|> The word cat backwards is tac.
            <|user|> Sort the numbers 5, 3, 9, 1. <|assistant|> The sorted numbers are 1, 3, 5, 9.
            0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 30 40 50 60 70 80 90 100
            1 + 1 = 2. 2 + 2 = 4. 3 + 4 = 7. 10 - 3 = 7. 9 * 9 = 81. 100 / 4 = 25.
            The model reads a question and writes an answer. A good answer is clear, short and correct.
            A language model learns to predict the next word in a sentence. It reads many examples,
            and with each example it changes its weights a little so that the right word becomes more likely.
            In self-play fine-tuning the model plays against an earlier copy of itself. The earlier model
            writes answers to the questions, and the new model learns to tell those answers apart from
            the answers written by people. When the two can no longer be told apart, the training stops.
            The user asks a question. The assistant gives a helpful answer. The system sets the rules.
            Please explain this in simple words. Thank you for your help! Here is what you asked for:
            There are many ways to solve this problem, but the simplest one is often the best.
            First, read the question carefully. Then think about what is being asked. Finally, write the answer.
            The quick brown fox jumps over the lazy dog. The five boxing wizards jump quickly.
            What time is it? It is ten past four in the afternoon, and the sun is still shining.
            She said that they would come back tomorrow, but nobody knew when they would arrive.
            This is a list of things to do: buy bread, call a friend, read a book, and go for a walk.
            Why is the sky blue? Because air scatters blue light from the sun more than red light.
            Water boils at 100 degrees and freezes at 0 degrees on the Celsius scale.
            The number of people who live in the city has grown every year since the new station opened.
            If you have any other questions, feel free to ask. I am happy to help with anything else.
            """;
}
