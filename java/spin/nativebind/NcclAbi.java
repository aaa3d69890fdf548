package spin.nativebind;

/**
 * The values of nccl.h that an NCCL binding needs, ahead of that binding: VendorHeadersTest
 * compares them with NVIDIA's header.
 */
final class NcclAbi {
    /** ncclResult_t ncclSuccess */
    static final int SUCCESS = 0;
    /** ncclDataType_t ncclFloat32 */
    static final int FLOAT32 = 7;
    /** ncclDataType_t ncclBfloat16 */
    static final int BFLOAT16 = 9;
    /** ncclRedOp_t ncclSum */
    static final int SUM = 0;
    /** sizeof(ncclUniqueId), NCCL_UNIQUE_ID_BYTES: the id that rank 0 hands to every other rank. */
    static final int UNIQUE_ID_BYTES = 128;

    private NcclAbi() {}
}
