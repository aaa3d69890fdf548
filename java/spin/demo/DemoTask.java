package spin.demo;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.SplittableRandom;
import spin.data.SpinRecord;
import spin.text.ChatMessage;

/**
 * The demo's synthetic instruction tasks: short digit-list problems with exactly one right answer,
 * so that held-out exact match measures the model plainly. Records carry an empty generated
 * answer, as spin reformat writes them: iteration 0 fills it by generation.
 */
public final class DemoTask {
    private DemoTask() {}

    /** The kinds of problem. */
    public enum Kind {
        /** "what is the opposite of hot?" -> "cold", in several phrasings */
        OPPOSITE,
        /** "reverse: 7 2 9" -> "9 2 7" */
        REVERSE,
        /** "next: 7 2 9" -> "8 3 0" (every digit plus one, 9 wraps to 0) */
        NEXT,
        /** "sort: 7 2 9" -> "2 7 9" */
        SORT,
        /** "add: 31 + 45" -> "76" */
        ADD;

        public static Kind parse(String name) {
            try {
                return valueOf(name.trim().toUpperCase(Locale.ROOT));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("unknown demo task \"" + name + "\"; choose from opposite, reverse, next, sort, add");
            }
        }
    }

    /**
     * {@code count} distinct problems of the given kinds (drawn evenly) with {@code seed}, excluding
     * any question in {@code exclude}.
     */
    public static List<SpinRecord> records(List<Kind> kinds, int count, long seed, Set<String> exclude) {
        SplittableRandom rng = new SplittableRandom(seed);
        Set<String> seen = new HashSet<>(exclude);
        List<SpinRecord> out = new ArrayList<>(count);
        int attempts = 0;
        while (out.size() < count) {
            if (++attempts > count * 100) {
                throw new IllegalStateException("cannot draw " + count + " distinct demo problems");
            }
            String[] qa = problem(kinds.get(rng.nextInt(kinds.size())), rng);
            if (seen.add(qa[0])) {
                out.add(new SpinRecord(List.of(ChatMessage.user(qa[0]), ChatMessage.assistant(qa[1])),
                        List.of(ChatMessage.user(qa[0]), ChatMessage.assistant(""))));
            }
        }
        return out;
    }

    /** The question of a record, for keeping train and test apart. */
    public static String question(SpinRecord record) {
        return record.real().getFirst().content();
    }

    private static final String[][] OPPOSITES = {{"hot", "cold"}, {"big", "small"}, {"fast", "slow"}, {"up", "down"},
        {"left", "right"}, {"open", "closed"}, {"happy", "sad"}, {"light", "dark"}, {"early", "late"}, {"full", "empty"},
        {"wet", "dry"}, {"hard", "soft"}, {"rich", "poor"}, {"loud", "quiet"}, {"thick", "thin"}, {"strong", "weak"},
        {"high", "low"}, {"long", "short"}, {"clean", "dirty"}, {"first", "last"}, {"win", "lose"}, {"push", "pull"},
        {"true", "false"}, {"day", "night"}, {"north", "south"}, {"east", "west"}, {"in", "out"}, {"yes", "no"},
        {"black", "white"}, {"start", "end"}};
    private static final String[] OPPOSITE_PHRASINGS = {"opposite of %s", "what is the opposite of %s?",
        "give the opposite of the word %s", "%s - what is its opposite?", "the opposite of %s is what?",
        "name the opposite of %s, please", "tell me the opposite of %s", "antonym of %s?"};

    private static String[] problem(Kind kind, SplittableRandom rng) {
        if (kind == Kind.OPPOSITE) {
            String[] pair = OPPOSITES[rng.nextInt(OPPOSITES.length)];
            int side = rng.nextInt(2);
            return new String[] {OPPOSITE_PHRASINGS[rng.nextInt(OPPOSITE_PHRASINGS.length)].formatted(pair[side]), pair[1 - side]};
        }
        if (kind == Kind.ADD) {
            int a = rng.nextInt(10, 50), b = rng.nextInt(10, 50);
            return new String[] {"add: " + a + " + " + b, Integer.toString(a + b)};
        }
        int[] digits = new int[rng.nextInt(3, 6)];
        for (int i = 0; i < digits.length; i++) {
            digits[i] = rng.nextInt(10);
        }
        int[] answer = new int[digits.length];
        for (int i = 0; i < digits.length; i++) {
            answer[i] = switch (kind) {
                case REVERSE -> digits[digits.length - 1 - i];
                case NEXT -> (digits[i] + 1) % 10;
                default -> digits[i];
            };
        }
        if (kind == Kind.SORT) {
            Arrays.sort(answer);
        }
        return new String[] {kind.name().toLowerCase(Locale.ROOT) + ": " + join(digits), join(answer)};
    }

    private static String join(int[] digits) {
        StringBuilder s = new StringBuilder();
        for (int d : digits) {
            if (!s.isEmpty()) {
                s.append(' ');
            }
            s.append(d);
        }
        return s.toString();
    }
}
