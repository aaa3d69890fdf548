package spin.report;

import java.awt.BasicStroke;
import java.awt.FontMetrics;
import java.awt.Graphics2D;
import java.awt.Rectangle;
import java.awt.Shape;
import java.awt.Stroke;
import java.awt.geom.Ellipse2D;
import java.awt.geom.Line2D;
import java.awt.geom.Path2D;
import java.awt.geom.Point2D;
import java.awt.geom.Rectangle2D;
import java.awt.image.BufferedImage;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * Metrics over steps, one panel per run that logged them ({@link RunPanels}) with its own step axis, its name above
 * it and its colour, all panels sharing the y axis and a dashed separator between neighbours. A
 * series breaks where a value is NaN or infinite, and a point with no finite neighbour is drawn as a dot.
 */
final class LineChart {
    /** How a series is drawn: training values as lines (a chart's second metric dotted), evaluation values dashed with markers. */
    enum Style {
        SOLID(null, false, false),
        DOTTED(new float[] {2, 4}, false, false),
        DASHED_CIRCLES(new float[] {7, 4}, true, false),
        DASHED_SQUARES(new float[] {7, 4}, true, true);

        private final float[] dash;
        private final boolean markers, square;

        Style(float[] dash, boolean markers, boolean square) {
            this.dash = dash;
            this.markers = markers;
            this.square = square;
        }

        Stroke stroke() {
            return dash == null ? new BasicStroke(2f, BasicStroke.CAP_ROUND, BasicStroke.JOIN_ROUND)
                    : new BasicStroke(2f, BasicStroke.CAP_BUTT, BasicStroke.JOIN_ROUND, 10f, dash, 0f);
        }

        Shape marker(double x, double y) {
            double r = 3.5;
            return square ? new Rectangle2D.Double(x - r, y - r, 2 * r, 2 * r) : new Ellipse2D.Double(x - r, y - r, 2 * r, 2 * r);
        }
    }

    /** One run's values of one metric; x is the run's step, y may be NaN or infinite (not drawn). */
    record Series(int run, Style style, List<Point2D.Double> points) {}

    private LineChart() {}

    /**
     * @param styleNames what each style used here means ("train", "eval", "real", ...), for the legend
     * @param notes what was left out, written under the legend
     */
    static BufferedImage render(String title, String yName, RunPanels allRuns, List<Series> series, Map<Style, String> styleNames,
            List<String> notes) {
        ChartCanvas canvas = new ChartCanvas(title);
        Rectangle data = ChartCanvas.DATA;
        TreeSet<Integer> runsShown = new TreeSet<>();
        TreeSet<Style> stylesShown = new TreeSet<>();
        for (Series s : series) {
            runsShown.add(s.run());
            stylesShown.add(s.style());
        }
        RunPanels panels = allRuns.only(runsShown);
        Map<Integer, Axis> x = new HashMap<>();
        int ticksPerPanel = Math.max(2, 8 / Math.max(1, runsShown.size()));
        for (int run : panels.runs()) {
            Axis axis = new Axis(0, panels.lastStep(run), panels.left(run, data.x, data.width), panels.right(run, data.x, data.width),
                    ticksPerPanel, 1);
            x.put(run, axis);
            canvas.xTicks(axis);
        }
        Axis y = yAxis(series, data);
        canvas.yAxis(y, yName);
        canvas.xName(runsShown.size() > 1 ? "step (each run's own, one panel per run)" : "step");
        Graphics2D g = canvas.graphics();
        separators(g, panels);
        for (Series s : series) {
            draw(g, s, x.get(s.run()), y);
        }
        canvas.legendHeading("Runs");
        for (int run : runsShown) {
            Rectangle sample = canvas.legendRow(panels.name(run));
            if (sample != null) {
                g.setColor(RunColours.of(run));
                g.fillRect(sample.x, sample.y + 3, sample.width, sample.height - 6);
            }
        }
        canvas.legendHeading("Lines");
        for (Style style : stylesShown) {
            Rectangle sample = canvas.legendRow(styleNames.get(style));
            if (sample != null) {
                sampleLine(g, style, sample);
            }
        }
        for (String note : notes) {
            canvas.legendNote(note);
        }
        return canvas.finish();
    }

    /** The finite values' range, or 0..1 when there are none, so an all-NaN chart still has axes. */
    private static Axis yAxis(List<Series> series, Rectangle data) {
        double min = Double.POSITIVE_INFINITY, max = Double.NEGATIVE_INFINITY;
        for (Series s : series) {
            for (Point2D.Double p : s.points()) {
                if (Double.isFinite(p.y)) {
                    min = Math.min(min, p.y);
                    max = Math.max(max, p.y);
                }
            }
        }
        if (min > max) {
            min = 0;
            max = 1;
        }
        return new Axis(min, max, data.y + data.height, data.y, 6, 0);
    }

    /** A dashed line between neighbouring panels, and each run's name above its panel (clipped to it). */
    private static void separators(Graphics2D g, RunPanels panels) {
        FontMetrics m = g.getFontMetrics();
        Rectangle frame = ChartCanvas.FRAME, data = ChartCanvas.DATA;
        for (int run : panels.runs()) {
            double left = panels.left(run, data.x, data.width), right = panels.right(run, data.x, data.width);
            if (run != panels.runs().getFirst()) {
                int px = (int) Math.round(left - RunPanels.GAP / 2.0);
                g.setColor(ChartCanvas.MUTED);
                g.setStroke(new BasicStroke(1f, BasicStroke.CAP_BUTT, BasicStroke.JOIN_MITER, 10f, new float[] {4, 4}, 0f));
                g.drawLine(px, frame.y, px, frame.y + frame.height);
            }
            String name = panels.name(run);
            while (name.length() > 1 && m.stringWidth(name) > right - left) {
                name = name.substring(0, name.length() - 2) + "…";
            }
            g.setColor(ChartCanvas.TEXT);
            g.drawString(name, (int) Math.round(left), frame.y - 5);
        }
    }

    private static void draw(Graphics2D g, Series s, Axis x, Axis y) {
        g.setColor(RunColours.of(s.run()));
        g.setStroke(s.style().stroke());
        List<Point2D.Double> points = s.points();
        Path2D.Double line = new Path2D.Double();
        boolean drawing = false;
        for (int i = 0; i < points.size(); i++) {
            Point2D.Double p = points.get(i);
            if (!Double.isFinite(p.y)) {
                drawing = false;
                continue;
            }
            double px = x.pixel(p.x), py = y.pixel(p.y);
            boolean isolated = !drawing && (i + 1 == points.size() || !Double.isFinite(points.get(i + 1).y));
            if (s.style().markers) {
                g.fill(s.style().marker(px, py));
            } else if (isolated) {
                g.fill(new Ellipse2D.Double(px - 3, py - 3, 6, 6));
            }
            if (drawing) {
                line.lineTo(px, py);
            } else {
                line.moveTo(px, py);
                drawing = true;
            }
        }
        g.draw(line);
    }

    private static void sampleLine(Graphics2D g, Style style, Rectangle box) {
        g.setColor(ChartCanvas.TEXT);
        g.setStroke(style.stroke());
        double mid = box.y + box.height / 2.0;
        g.draw(new Line2D.Double(box.x, mid, box.x + box.width, mid));
        if (style.markers) {
            g.fill(style.marker(box.x + box.width / 2.0, mid));
        }
    }
}
