package spin.text;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import spin.model.MistralConfig;

/** The demo tokenizer through the HF tokenizers library: what SPIN relies on when it tokenizes. */
class TokenizerTest {
    private static Tokenizer tokenizer;

    @TempDir
    Path dir;

    @BeforeAll
    static void load() {
        tokenizer = TestTokenizer.load();
    }

    @AfterAll
    static void close() {
        tokenizer.close();
    }

    @Test
    void multilingualTextAndEmojiSurviveARoundTrip() {
        for (String text : List.of("Hello, world!", "Grüße aus Köln — naïve café", "日本語のテキスト", "Привет, мир",
                "emoji 😀👍🏽 and a family 👨‍👩‍👧", "  two leading spaces", "tabs\tand\nnewlines\r\n", "x", "")) {
            int[] ids = tokenizer.encode(text);
            assertEquals(text, tokenizer.decode(ids, false), "ids " + Arrays.toString(ids));
            assertTrue(Arrays.stream(ids).allMatch(id -> id >= 0 && id < tokenizer.vocabSize()), Arrays.toString(ids));
        }
    }

    @Test
    void characterOutsideTheVocabularyFallsBackToItsUtf8Bytes() {
        // "😀" is F0 9F 98 80 in UTF-8; bytes <0xNN> have ids 3 + NN. The leading ▁ is the legacy prefix.
        assertArrayEquals(new int[] {tokenizer.tokenId(BpeTrainer.SPACE), 3 + 0xF0, 3 + 0x9F, 3 + 0x98, 3 + 0x80},
                tokenizer.encode("😀"));
    }

    @Test
    void specialTokensInTheTextBecomeTheirIdsAndNoneAreAdded() {
        assertEquals(0, tokenizer.tokenId("<unk>"));
        assertEquals(1, tokenizer.tokenId("<s>"));
        assertEquals(2, tokenizer.eosId());
        assertArrayEquals(new int[] {2}, tokenizer.encode("</s>"));
        assertArrayEquals(new int[] {1}, tokenizer.encode("<s>"));
        int[] ids = tokenizer.encode("Hi</s>\nyou");
        int eosAt = indexOf(ids, 2);
        assertTrue(eosAt > 0 && indexOf(ids, 1) < 0, Arrays.toString(ids));
        // As in Mistral's (legacy) tokenizer, the text after a special token starts with a ▁ of its own.
        assertEquals(tokenizer.tokenId(BpeTrainer.SPACE), ids[eosAt + 1]);
        assertEquals("Hi</s> \nyou", tokenizer.decode(ids, false));
        assertEquals("Hi \nyou", tokenizer.decode(ids, true));
    }

    @Test
    void longTextIsNeverTruncated() {
        String text = "The quick brown fox jumps over the lazy dog. 😀 ".repeat(100);
        int[] ids = tokenizer.encode(text);
        assertTrue(ids.length > 2000, "only " + ids.length + " tokens");
        assertEquals(text, tokenizer.decode(ids, false));
    }

    @Test
    void theDemoTokenizerFitsTheTinyModelAndUsesZephyrsTemplate() {
        assertEquals(DemoTokenizer.DEFAULT_VOCAB_SIZE, tokenizer.vocabSize());
        assertTrue(tokenizer.vocabSize() <= MistralConfig.tiny().vocabSize());
        assertEquals(MistralConfig.tiny().bosTokenId(), tokenizer.tokenId(tokenizer.config().bosToken()));
        assertEquals(MistralConfig.tiny().eosTokenId(), tokenizer.eosId());
        assertNull(tokenizer.config().padToken());
        assertEquals(tokenizer.eosId(), tokenizer.padId());
        assertEquals(ChatTemplate.ZEPHYR, tokenizer.chatTemplate().source());
        // Learned merges make common text much shorter than one token per character.
        assertTrue(tokenizer.encode("What is 12 + 7?").length < 8);
        assertEquals(2, tokenizer.encode("<|assistant|>\n").length);
    }

    @Test
    void chatTemplateJinjaFileAndPadTokenAreHonoured() throws IOException {
        copyTokenizer();
        Files.writeString(dir.resolve(TokenizerConfig.FILE_NAME),
                "{\"eos_token\": {\"content\": \"</s>\", \"special\": true}, \"pad_token\": \"<unk>\", \"chat_template\": \"ignored\"}");
        Files.writeString(dir.resolve(TokenizerConfig.TEMPLATE_FILE_NAME), "{% for m in messages %}[{{ m['content'] }}]{% endfor %}");
        try (Tokenizer t = Tokenizer.load(dir)) {
            assertEquals(0, t.padId());
            assertEquals("[a][b]", t.chatTemplate().render(List.of(ChatMessage.user("a"), ChatMessage.assistant("b")), false));
        }
    }

    @Test
    void zephyrIsTheFallbackWhenTheConfigHasNoTemplate() throws IOException {
        copyTokenizer();
        Files.writeString(dir.resolve(TokenizerConfig.FILE_NAME), "{\"eos_token\": \"</s>\"}");
        try (Tokenizer t = Tokenizer.load(dir)) {
            assertEquals(ChatTemplate.ZEPHYR, t.chatTemplate().source());
        }
    }

    @Test
    void missingOrBrokenFilesAreNamedWithTheFix() throws IOException {
        NoSuchFileException noJson = assertThrows(NoSuchFileException.class, () -> Tokenizer.load(dir));
        assertTrue(noJson.getFile().endsWith("tokenizer.json") && noJson.getReason().contains("copy"), noJson.getMessage());
        copyTokenizer();
        Files.writeString(dir.resolve(TokenizerConfig.FILE_NAME), "{\"eos_token\": \"<eos>\"}");
        IOException unknownEos = assertThrows(IOException.class, () -> Tokenizer.load(dir));
        assertTrue(unknownEos.getMessage().contains("\"eos_token\" is \"<eos>\", which"), unknownEos.getMessage());
        Files.writeString(dir.resolve(TokenizerConfig.FILE_NAME), "{\"bos_token\": \"<s>\"}");
        IOException noEos = assertThrows(IOException.class, () -> Tokenizer.load(dir));
        assertTrue(noEos.getMessage().contains("\"eos_token\" is missing"), noEos.getMessage());
        Files.writeString(dir.resolve(TokenizerConfig.FILE_NAME), "{\"eos_token\": \"</s>\", \"chat_template\": 3}");
        IOException badTemplate = assertThrows(IOException.class, () -> Tokenizer.load(dir));
        assertTrue(badTemplate.getMessage().contains("\"chat_template\" must be a string"), badTemplate.getMessage());
        Files.writeString(dir.resolve(Tokenizer.FILE_NAME), "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"</s>\": 0}, \"merges\": [\"a\"]}}");
        Files.writeString(dir.resolve(TokenizerConfig.FILE_NAME), "{\"eos_token\": \"</s>\"}");
        IOException unloadable = assertThrows(IOException.class, () -> Tokenizer.load(dir));
        assertTrue(unloadable.getMessage().contains("the HF tokenizers library cannot load it"), unloadable.getMessage());
    }

    private void copyTokenizer() throws IOException {
        Files.copy(TestTokenizer.directory().resolve(Tokenizer.FILE_NAME), dir.resolve(Tokenizer.FILE_NAME));
    }

    private static int indexOf(int[] a, int value) {
        for (int i = 0; i < a.length; i++) {
            if (a[i] == value) {
                return i;
            }
        }
        return -1;
    }
}
