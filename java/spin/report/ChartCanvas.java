package spin.report;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.FontMetrics;
import java.awt.Graphics2D;
import java.awt.Rectangle;
import java.awt.RenderingHints;
import java.awt.geom.AffineTransform;
import java.awt.image.BufferedImage;
import java.util.ArrayList;
import java.util.List;

/**
 * What every chart shares: a white image of a fixed size, the title, a framed plot area with its
 * axes, ticks and grid, and a legend column on the right. The charts draw their data in between.
 */
final class ChartCanvas {
    static final int WIDTH = 960, HEIGHT = 540;
    /** The axes' frame; the legend column lies right of it. */
    static final Rectangle FRAME = new Rectangle(80, 48, WIDTH - 210 - 80, HEIGHT - 60 - 48);
    /** Data are mapped into the frame less this margin, so points at an axis' extremes are not hidden by the frame line. */
    static final int INSET = 10;
    /** Where data land: an axis' minimum on the left or bottom edge, its maximum on the right or top edge. */
    static final Rectangle DATA = new Rectangle(FRAME.x + INSET, FRAME.y + INSET, FRAME.width - 2 * INSET, FRAME.height - 2 * INSET);

    static final Color TEXT = new Color(0x33, 0x33, 0x33);
    static final Color MUTED = new Color(0x80, 0x80, 0x80);
    private static final Color GRID = new Color(0xE8, 0xE8, 0xE8);
    private static final Font FONT = new Font(Font.SANS_SERIF, Font.PLAIN, 12);
    private static final Font BOLD = FONT.deriveFont(Font.BOLD);
    private static final Font TITLE = new Font(Font.SANS_SERIF, Font.BOLD, 16);
    private static final int LEGEND_X = FRAME.x + FRAME.width + 18, LEGEND_WIDTH = WIDTH - LEGEND_X - 8, ROW = 18;
    /** A legend sample: a short line, a marker or a colour box drawn by the chart. */
    static final int SAMPLE_WIDTH = 26;

    private final BufferedImage image = new BufferedImage(WIDTH, HEIGHT, BufferedImage.TYPE_INT_RGB);
    private final Graphics2D g = image.createGraphics();
    private int legendY = FRAME.y + 4;
    private int legendHidden;
    private int xLabelsEnd = Integer.MIN_VALUE;

    ChartCanvas(String title) {
        g.setColor(Color.WHITE);
        g.fillRect(0, 0, WIDTH, HEIGHT);
        g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
        g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
        g.setRenderingHint(RenderingHints.KEY_STROKE_CONTROL, RenderingHints.VALUE_STROKE_PURE);
        g.setFont(TITLE);
        g.setColor(TEXT);
        FontMetrics m = g.getFontMetrics();
        g.drawString(title, FRAME.x + (FRAME.width - m.stringWidth(title)) / 2, 24);
        g.setFont(FONT);
    }

    /** The graphics the chart draws its data with (antialiased, 12 pt sans-serif). */
    Graphics2D graphics() {
        return g;
    }

    /** Horizontal grid lines and labels at the y axis' ticks, and the axis name written upwards on the left. */
    void yAxis(Axis y, String name) {
        FontMetrics m = g.getFontMetrics();
        g.setStroke(new BasicStroke(1f));
        for (double tick : y.ticks()) {
            int py = (int) Math.round(y.pixel(tick));
            g.setColor(GRID);
            g.drawLine(FRAME.x + 1, py, FRAME.x + FRAME.width - 1, py);
            g.setColor(TEXT);
            g.drawLine(FRAME.x - 4, py, FRAME.x, py);
            String label = y.label(tick);
            g.drawString(label, FRAME.x - 7 - m.stringWidth(label), py + m.getAscent() / 2 - 1);
        }
        AffineTransform saved = g.getTransform();
        g.rotate(-Math.PI / 2);
        g.drawString(name, -(FRAME.y + (FRAME.height + m.stringWidth(name)) / 2), 16);
        g.setTransform(saved);
    }

    /**
     * Tick marks and labels under the frame at the x axis' ticks (one call per panel, left to
     * right); a label that would overlap the previous one, a neighbouring panel's, is left out.
     */
    void xTicks(Axis x) {
        FontMetrics m = g.getFontMetrics();
        g.setColor(TEXT);
        g.setStroke(new BasicStroke(1f));
        int bottom = FRAME.y + FRAME.height;
        for (double tick : x.ticks()) {
            int px = (int) Math.round(x.pixel(tick));
            g.drawLine(px, bottom, px, bottom + 4);
            String label = x.label(tick);
            int start = px - m.stringWidth(label) / 2;
            if (start > xLabelsEnd) {
                g.drawString(label, start, bottom + 6 + m.getAscent());
                xLabelsEnd = start + m.stringWidth(label) + 14;
            }
        }
    }

    /** Labels centred under given x positions (a bar chart's categories), and the axis name below them. */
    void xCategories(List<String> labels, List<Integer> centres, String name) {
        FontMetrics m = g.getFontMetrics();
        g.setColor(TEXT);
        for (int i = 0; i < labels.size(); i++) {
            g.drawString(labels.get(i), centres.get(i) - m.stringWidth(labels.get(i)) / 2, FRAME.y + FRAME.height + 6 + m.getAscent());
        }
        xName(name);
    }

    /** The x axis' name under the tick labels. */
    void xName(String name) {
        FontMetrics m = g.getFontMetrics();
        g.drawString(name, FRAME.x + (FRAME.width - m.stringWidth(name)) / 2, HEIGHT - 12);
    }

    void legendHeading(String text) {
        if (roomFor(1)) {
            g.setFont(BOLD);
            g.setColor(TEXT);
            g.drawString(text, LEGEND_X, legendY + 12);
            g.setFont(FONT);
            legendY += ROW;
        }
    }

    /**
     * Writes the next legend row's text and returns the box its sample goes in
     * ({@link #SAMPLE_WIDTH} wide, row high), or null when the column is full: the rows left out
     * are counted in one last line instead.
     */
    Rectangle legendRow(String text) {
        if (!roomFor(2)) {
            legendHidden++;
            return null;
        }
        g.setColor(TEXT);
        g.drawString(text, LEGEND_X + SAMPLE_WIDTH + 8, legendY + 12);
        Rectangle sample = new Rectangle(LEGEND_X, legendY, SAMPLE_WIDTH, ROW - 2);
        legendY += ROW;
        return sample;
    }

    /** Grey text wrapped to the legend column: what the chart left out and why. */
    void legendNote(String text) {
        FontMetrics m = g.getFontMetrics();
        List<String> lines = new ArrayList<>();
        StringBuilder line = new StringBuilder();
        for (String word : text.split(" ")) {
            if (!line.isEmpty() && m.stringWidth(line + " " + word) > LEGEND_WIDTH) {
                lines.add(line.toString());
                line.setLength(0);
            }
            line.append(line.isEmpty() ? "" : " ").append(word);
        }
        lines.add(line.toString());
        if (!roomFor(lines.size() + 1)) {
            legendHidden++;
            return;
        }
        legendY += ROW / 2;
        g.setColor(MUTED);
        for (String l : lines) {
            g.drawString(l, LEGEND_X, legendY + 12);
            legendY += ROW - 3;
        }
    }

    /** Leaves a row for the "N more" line, so that it always fits. */
    private boolean roomFor(int rows) {
        return legendHidden == 0 && legendY + (rows + 1) * ROW <= FRAME.y + FRAME.height;
    }

    /** Draws the frame over the data's edges, notes what the legend had no room for, and hands the image over. */
    BufferedImage finish() {
        if (legendHidden > 0) {
            g.setColor(MUTED);
            g.drawString("(" + legendHidden + " more not shown)", LEGEND_X, legendY + 12);
        }
        g.setColor(MUTED);
        g.setStroke(new BasicStroke(1f));
        g.drawRect(FRAME.x, FRAME.y, FRAME.width, FRAME.height);
        g.dispose();
        return image;
    }
}
