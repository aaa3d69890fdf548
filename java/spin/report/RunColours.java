package spin.report;

import java.awt.Color;

/** One colour per run, by its position in run order, the same on every chart. */
final class RunColours {
    /** matplotlib's tab10, chosen to stay distinguishable from each other; an 11th run reuses the first. */
    private static final int[] TAB10 = {0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd, 0x8c564b, 0xe377c2, 0x7f7f7f, 0xbcbd22, 0x17becf};

    private RunColours() {}

    static Color of(int run) {
        return new Color(TAB10[run % TAB10.length]);
    }
}
