package spin.report;

import java.awt.Color;
import java.awt.FontMetrics;
import java.awt.Graphics2D;
import java.awt.Rectangle;
import java.awt.geom.Rectangle2D;
import java.awt.image.BufferedImage;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * One bar per category with its value written above it. The y axis runs from 0 (or the lowest
 * value, if below) to at least 1, since the values shown are fractions such as exact match, and
 * bars of 0.12 and 0.13 should not look twice as different as they are.
 */
final class BarChart {
    /** A category; a null or non-finite value gets no bar and "n/a". */
    record Bar(String label, Double value, Color colour) {}

    private BarChart() {}

    static BufferedImage render(String title, String yName, String xName, List<Bar> bars) {
        ChartCanvas canvas = new ChartCanvas(title);
        Rectangle data = ChartCanvas.DATA;
        double min = 0, max = 1;
        for (Bar b : bars) {
            if (drawn(b)) {
                min = Math.min(min, b.value());
                max = Math.max(max, b.value());
            }
        }
        Axis y = new Axis(min, max, data.y + data.height, data.y, 5, 0);
        canvas.yAxis(y, yName);
        Graphics2D g = canvas.graphics();
        FontMetrics m = g.getFontMetrics();
        double slot = (double) data.width / Math.max(1, bars.size());
        double width = Math.min(slot * 0.6, 90);
        List<Integer> centres = new ArrayList<>();
        canvas.legendHeading("Models");
        for (int i = 0; i < bars.size(); i++) {
            Bar b = bars.get(i);
            double centre = data.x + slot * (i + 0.5);
            centres.add((int) Math.round(centre));
            String text = "n/a";
            if (drawn(b)) {
                double top = y.pixel(Math.max(b.value(), 0)), bottom = y.pixel(Math.min(b.value(), 0));
                g.setColor(b.colour());
                g.fill(new Rectangle2D.Double(centre - width / 2, top, width, bottom - top));
                text = String.format(Locale.ROOT, "%.3f", b.value());
            }
            g.setColor(ChartCanvas.TEXT);
            int baseline = (int) Math.round(Math.min(y.pixel(0), drawn(b) ? y.pixel(b.value()) : y.pixel(0))) - 4;
            g.drawString(text, (int) Math.round(centre - m.stringWidth(text) / 2.0), baseline);
            Rectangle sample = canvas.legendRow(b.label());
            if (sample != null) {
                g.setColor(b.colour());
                g.fillRect(sample.x, sample.y + 3, sample.width, sample.height - 6);
            }
        }
        canvas.xCategories(bars.stream().map(Bar::label).toList(), centres, xName);
        return canvas.finish();
    }

    private static boolean drawn(Bar b) {
        return b.value() != null && Double.isFinite(b.value());
    }
}
