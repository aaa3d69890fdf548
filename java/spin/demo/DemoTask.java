package spin.demo;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import spin.data.SpinRecord;
import spin.text.ChatMessage;

/**
 * The demo's synthetic instruction task: short digit-list problems with exactly one right answer
 * ("sort: 7 2 9" -> "2 7 9", "reverse: 7 2 9" -> "9 2 7", "add: 31 + 45" -> "76"), so that
 * held-out exact match measures the model plainly. Records carry an empty generated answer, as
 * spin reformat writes them: iteration 0 fills it by generation.
 */
public final class DemoTask {
    private DemoTask() {}

    /** {@code count} distinct problems drawn with {@code seed}, excluding any question in {@code exclude}. */
    public static List<SpinRecord> records(int count, long seed, java.util.Set<String> exclude) {
        SplittableRandom rng = new SplittableRandom(seed);
        java.util.Set<String> seen = new java.util.HashSet<>(exclude);
        List<SpinRecord> out = new ArrayList<>(count);
        int attempts = 0;
        while (out.size() < count) {
            if (++attempts > count * 100) {
                throw new IllegalStateException("cannot draw " + count + " distinct demo problems");
            }
            String[] qa = problem(rng);
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

    private static String[] problem(SplittableRandom rng) {
        int kind = rng.nextInt(3);
        if (kind == 2) {
            int a = rng.nextInt(10, 50), b = rng.nextInt(10, 50);
            return new String[] {"add: " + a + " + " + b, Integer.toString(a + b)};
        }
        int[] digits = new int[rng.nextInt(3, 6)];
        for (int i = 0; i < digits.length; i++) {
            digits[i] = rng.nextInt(10);
        }
        int[] answer = digits.clone();
        if (kind == 0) {
            Arrays.sort(answer);
        } else {
            for (int i = 0; i < answer.length / 2; i++) {
                int t = answer[i];
                answer[i] = answer[answer.length - 1 - i];
                answer[answer.length - 1 - i] = t;
            }
        }
        return new String[] {(kind == 0 ? "sort: " : "reverse: ") + join(digits), join(answer)};
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
