package spin.report;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * A linear map from data values to pixels: {@code min} lands on {@code pixelOfMin} and {@code max}
 * on {@code pixelOfMax} exactly (so the extremes of the data touch the edges of the plot area),
 * with ticks at round numbers (1, 2 or 5 times a power of ten) inside the range.
 */
final class Axis {
    private final double min, max, pixelOfMin, pixelOfMax;
    private final double tickStep;
    private final List<Double> ticks = new ArrayList<>();

    /**
     * @param targetTicks about how many ticks to place
     * @param smallestStep the finest tick step allowed (1 for steps, which are whole numbers; 0 for none)
     */
    Axis(double min, double max, double pixelOfMin, double pixelOfMax, int targetTicks, double smallestStep) {
        if (!(max > min)) {
            // One point or a constant metric: widen the range so the value sits in the middle of the plot.
            double pad = min == 0 ? 1 : Math.abs(min) * 0.1;
            min -= pad;
            max += pad;
        }
        this.min = min;
        this.max = max;
        this.pixelOfMin = pixelOfMin;
        this.pixelOfMax = pixelOfMax;
        this.tickStep = Math.max(roundStep((max - min) / targetTicks), smallestStep);
        // The tolerance keeps a tick that rounding puts a hair outside the range (0.4 / 0.05 = 8.000000000000002).
        for (long k = (long) Math.ceil(min / tickStep - 1e-9); k * tickStep <= max + tickStep * 1e-9; k++) {
            ticks.add(k * tickStep);
        }
    }

    private static double roundStep(double raw) {
        double magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
        double norm = raw / magnitude;
        return (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * magnitude;
    }

    double pixel(double value) {
        return pixelOfMin + (value - min) / (max - min) * (pixelOfMax - pixelOfMin);
    }

    List<Double> ticks() {
        return ticks;
    }

    /**
     * A tick label with as many digits as the tick step needs; scientific notation where plain
     * digits would be many (learning rates of 5e-7, for one).
     */
    String label(double value) {
        if (Math.abs(value) < tickStep * 1e-9) {
            return "0";
        }
        int stepExponent = (int) Math.floor(Math.log10(tickStep));
        double largest = Math.max(Math.abs(min), Math.abs(max));
        if (stepExponent < -4 || largest >= 1e6) {
            int digits = Math.max(0, (int) Math.floor(Math.log10(Math.abs(value))) - stepExponent);
            String text = String.format(Locale.ROOT, "%." + digits + "e", value);
            int e = text.indexOf('e');
            return text.substring(0, e) + "e" + Integer.parseInt(text.substring(e + 1));
        }
        return String.format(Locale.ROOT, "%." + Math.max(0, -stepExponent) + "f", value);
    }
}
