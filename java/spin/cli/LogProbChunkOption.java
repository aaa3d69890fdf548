package spin.cli;

import picocli.CommandLine.Option;
import spin.model.MistralConfig;
import spin.model.MistralModel;

/** The flag of commands that plan or run a training pass: how the lm_head + log-prob is chunked. */
final class LogProbChunkOption {
    @Option(names = "--logprob-chunk-rows", paramLabel = "ROWS",
            description = "rows of logits per chunk of the fused lm_head + log-prob; 0 = unfused, the whole [N, V] logits "
                    + "at once (default: as training, as many rows as " + MistralModel.LOGPROB_CHUNK_LOGITS + " logits make)")
    private Integer rows;

    /** The rows given, or the model's default for {@code config}. */
    int rows(MistralConfig config) {
        if (rows == null) {
            return MistralModel.defaultLogProbChunkRows(config);
        }
        if (rows < 0) {
            throw new IllegalArgumentException("--logprob-chunk-rows must be >= 0 (0 = unfused), got " + rows);
        }
        return rows;
    }
}
