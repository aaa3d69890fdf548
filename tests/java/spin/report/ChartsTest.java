package spin.report;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.Rectangle;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The PNGs: decodable, of the stated size, each run in its colour, points where the axes put them. */
class ChartsTest {
    /** matplotlib's tab10, written out here rather than read from RunColours. */
    private static final int BLUE = 0x1f77b4, ORANGE = 0xff7f0e, GREEN = 0x2ca02c, RED = 0xd62728;
    private static final Rectangle DATA = ChartCanvas.DATA;

    @TempDir
    Path work;

    private void metrics(String run, String... lines) throws IOException {
        Path f = work.resolve(run).resolve("metrics.jsonl");
        Files.createDirectories(f.getParent());
        Files.writeString(f, String.join("\n", lines) + "\n");
    }

    private static String loss(long step, String value) {
        return "{\"step\": " + step + ", \"loss\": " + value + "}";
    }

    private TrainingCharts.Chart chart(String file) throws IOException {
        List<Run> runs = RunDiscovery.find(work);
        return TrainingCharts.render(runs, RunPanels.of(runs)).stream().filter(c -> c.file().equals(file)).findFirst().orElseThrow();
    }

    private static int countInData(BufferedImage image, int rgb) {
        int n = 0;
        for (int y = DATA.y; y < DATA.y + DATA.height; y++) {
            for (int x = DATA.x; x < DATA.x + DATA.width; x++) {
                n += (image.getRGB(x, y) & 0xFFFFFF) == rgb ? 1 : 0;
            }
        }
        return n;
    }

    /** Whether a pixel of exactly this colour lies within 2 pixels of (x, y): lines are 2 px wide and antialiased. */
    private static boolean colourNear(BufferedImage image, double x, double y, int rgb) {
        for (int dy = -2; dy <= 2; dy++) {
            for (int dx = -2; dx <= 2; dx++) {
                int px = (int) Math.round(x) + dx, py = (int) Math.round(y) + dy;
                if (px >= 0 && py >= 0 && px < image.getWidth() && py < image.getHeight() && (image.getRGB(px, py) & 0xFFFFFF) == rgb) {
                    return true;
                }
            }
        }
        return false;
    }

    @Test
    void pngDecodesAtTheStatedSizeWithEveryRunInItsColour() throws IOException {
        List<String> sft = new ArrayList<>(), iter0 = new ArrayList<>(), iter1 = new ArrayList<>();
        for (int s = 1; s <= 30; s++) {
            sft.add(loss(s, String.valueOf(2.0 - s * 0.03)));
            iter0.add(loss(s, String.valueOf(0.69 - s * 0.01)));
            iter1.add(loss(s, String.valueOf(0.6 - s * 0.01)));
        }
        metrics("sft", sft.toArray(String[]::new));
        metrics("iter0/train", iter0.toArray(String[]::new));
        metrics("iter1/train", iter1.toArray(String[]::new));

        ReportWriter.write(work, work.resolve("report"));
        BufferedImage image = ImageIO.read(work.resolve("report/loss.png").toFile());
        assertEquals(960, image.getWidth());
        assertEquals(540, image.getHeight());
        for (int colour : new int[] {BLUE, ORANGE, GREEN}) {
            assertTrue(countInData(image, colour) > 50, String.format("run colour %06x in the plot area", colour));
        }
        assertEquals(0, countInData(image, RED), "no fourth run, so no fourth colour");
    }

    @Test
    void pointsLandWhereTheAxesMapThem() throws IOException {
        double[] values = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3};
        List<String> lines = new ArrayList<>();
        for (int i = 0; i < values.length; i++) {
            lines.add(loss(2L * (i + 1), String.valueOf(values[i])));
        }
        metrics("iter0/train", lines.toArray(String[]::new));
        BufferedImage image = chart("loss").image();

        // x: global steps 0..20 across the plot area; y: the values' range 1..9 from its bottom to its top.
        double top = DATA.y, bottom = DATA.y + DATA.height;
        assertTrue(colourNear(image, DATA.x + 12 / 20.0 * DATA.width, top, BLUE), "the maximum (9 at step 12) at the top");
        assertTrue(colourNear(image, DATA.x + 4 / 20.0 * DATA.width, bottom, BLUE), "a minimum (1 at step 4) at the bottom");
        assertTrue(colourNear(image, DATA.x + DATA.width, bottom - (3 - 1) / 8.0 * DATA.height, BLUE), "the last point (3 at step 20)");
        assertTrue(colourNear(image, DATA.x + 14 / 20.0 * DATA.width, bottom - (2 - 1) / 8.0 * DATA.height, BLUE), "2 at step 14");
        assertFalse(colourNear(image, DATA.x + 12 / 20.0 * DATA.width, bottom, BLUE), "nothing under the maximum");
        assertFalse(colourNear(image, DATA.x + 4 / 20.0 * DATA.width, top, BLUE), "nothing over the minimum");
    }

    @Test
    void nonFiniteValuesAreSkippedAndNotedAndASinglePointRunIsDrawn() throws IOException {
        metrics("iter0/train", loss(10, "0.7"));
        metrics("iter1/train", loss(2, "0.5"), loss(4, "NaN"), loss(6, "0.4"), loss(8, "Infinity"), loss(10, "0.3"));
        TrainingCharts.Chart chart = chart("loss");
        assertEquals(List.of("iter1: 2 loss values are NaN or infinite, not drawn"), chart.notes());
        // Two panels of steps 0..10, 20 px apart; finite values 0.3..0.7.
        double panel = (DATA.width - 20) / 2.0;
        assertTrue(colourNear(chart.image(), DATA.x + panel, DATA.y, BLUE), "iter0's one point, a dot at the top right of its panel");
        assertTrue(colourNear(chart.image(), DATA.x + panel + 20 + 6 / 10.0 * panel, DATA.y + DATA.height * 3 / 4.0, ORANGE),
                "iter1's 0.4 at its step 6, alone between NaN and Infinity, still drawn");
        assertTrue(colourNear(chart.image(), DATA.x + DATA.width, DATA.y + DATA.height, ORANGE), "iter1's last point at the bottom right");
    }

    /** A 50-step SPIN run after a 500-step warm-up gets a panel as wide as the warm-up's, on its own step axis. */
    @Test
    void eachRunGetsAnEqualPanelWithItsOwnSteps() throws IOException {
        List<String> sft = new ArrayList<>(), iter0 = new ArrayList<>();
        for (int s = 10; s <= 500; s += 10) {
            sft.add(loss(s, "1.0"));
        }
        for (int s = 1; s <= 50; s++) {
            iter0.add(loss(s, s <= 25 ? "0.0" : "2.0")); // a step from the bottom to the top half way through
        }
        metrics("sft", sft.toArray(String[]::new));
        metrics("iter0/train", iter0.toArray(String[]::new));
        BufferedImage image = chart("loss").image();
        double panel = (DATA.width - 20) / 2.0, left = DATA.x + panel + 20;
        assertTrue(colourNear(image, left + 10 / 50.0 * panel, DATA.y + DATA.height, ORANGE), "iter0 step 10 at a fifth of its panel");
        assertTrue(colourNear(image, left + 40 / 50.0 * panel, DATA.y, ORANGE), "iter0 step 40 at four fifths, at the top");
        assertFalse(colourNear(image, left + 10 / 50.0 * panel, DATA.y, ORANGE), "nothing above step 10");
        assertTrue(colourNear(image, DATA.x + panel / 2, DATA.y + DATA.height / 2.0, BLUE), "sft's step 250 in the middle of its panel");
        assertFalse(colourNear(image, DATA.x + panel + 10, DATA.y + DATA.height / 2.0, BLUE), "the gap between panels is empty");
    }

    @Test
    void aRunWithoutTheChartsMetricsGetsNoPanel() throws IOException {
        metrics("sft", loss(100, "1.0"));
        metrics("iter0/train", "{\"step\": 0, \"rewards/margins\": 0.0}", "{\"step\": 10, \"rewards/margins\": 1.0}");
        BufferedImage image = chart("rewards_margins").image();
        assertTrue(colourNear(image, DATA.x, DATA.y + DATA.height, ORANGE), "iter0 alone spans the plot: step 0 at the left");
        assertTrue(colourNear(image, DATA.x + DATA.width, DATA.y, ORANGE), "and step 10 at the right");
    }

    @Test
    void onlyChartsWithLoggedMetricsAreMadeAndEvaluationValuesShareThem() throws IOException {
        metrics("sft", "{\"step\": 5, \"loss\": 1.2, \"learning_rate\": 2e-5}");
        metrics("iter0/train", "{\"step\": 5, \"rewards/real\": 0.1, \"rewards/generated\": -0.1}",
                "{\"step\": 5, \"eval_rewards/margins\": 0.2}");
        List<Run> runs = RunDiscovery.find(work);
        List<String> files = TrainingCharts.render(runs, RunPanels.of(runs)).stream().map(TrainingCharts.Chart::file).toList();
        assertEquals(List.of("loss", "rewards_margins", "rewards", "learning_rate"), files);
    }

    @Test
    void axisTicksAreRoundNumbersWithReadableLabels() {
        Axis steps = new Axis(0, 720, 100, 820, 8, 1);
        assertEquals(List.of(0.0, 100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0), steps.ticks());
        assertEquals("300", steps.label(300));
        assertEquals(100 + 360, steps.pixel(360), 1e-9);

        Axis rate = new Axis(0, 1e-6, 400, 100, 6, 0);
        assertEquals(6, rate.ticks().size());
        assertEquals(4e-7, rate.ticks().get(2), 1e-20);
        assertEquals("4e-7", rate.label(rate.ticks().get(2)));
        assertEquals("0", rate.label(0));
        assertEquals(100, rate.pixel(1e-6), 1e-9);

        Axis loss = new Axis(0.4, 0.7, 400, 100, 6, 0);
        assertEquals(List.of(0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70), loss.ticks().stream().map(t -> Math.round(t * 100) / 100.0).toList());
        assertEquals("0.50", loss.label(loss.ticks().get(2)));

        Axis constant = new Axis(2, 2, 400, 100, 6, 0);
        assertEquals(250, constant.pixel(2), 1e-9, "a constant sits in the middle");
    }
}
