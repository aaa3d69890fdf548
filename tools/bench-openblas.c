// Times cblas_sgemm at the shapes given on the command line, for comparison with spin's Gemm
// (tools/bench-gemm.sh runs both). A shape is "XY:MxKxN": X/Y are N or T for op(A)/op(B), with
// the same row-major layout and leading dimensions as spin.backend.cpu.Gemm (beta = 0, like
// accumulate = false). Prints one line per shape: "shape median-GFLOP/s", after a line naming the
// BLAS that was linked, so a reference BLAS cannot pass for OpenBLAS.
#define _GNU_SOURCE
#include <cblas.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

char *openblas_get_config(void);
int openblas_get_num_threads(void);

static double now_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static int compare_doubles(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return (a > b) - (a < b);
}

static float *random_matrix(size_t count) {
  float *m = aligned_alloc(64, ((count * sizeof(float) + 63) / 64) * 64);
  if (!m) {
    perror("aligned_alloc");
    exit(1);
  }
  for (size_t i = 0; i < count; i++) m[i] = (float)rand() / RAND_MAX - 0.5f;
  return m;
}

int main(int argc, char **argv) {
  enum { SAMPLES = 15 };
  const double min_sample_seconds = 0.05;
  Dl_info where;
  const char *library = dladdr((void *)cblas_sgemm, &where) && where.dli_fname ? where.dli_fname : "?";
  printf("# BLAS: %s | %s | threads %d\n", library, openblas_get_config(), openblas_get_num_threads());
  for (int s = 1; s < argc; s++) {
    char ta, tb;
    int m, k, n;
    if (sscanf(argv[s], "%c%c:%dx%dx%d", &ta, &tb, &m, &k, &n) != 5 || !strchr("NT", ta) || !strchr("NT", tb)) {
      fprintf(stderr, "bad shape '%s': expected e.g. NT:512x256x768 (op(A) op(B) : M x K x N)\n", argv[s]);
      return 2;
    }
    int trans_a = ta == 'T', trans_b = tb == 'T';
    int lda = trans_a ? m : k, ldb = trans_b ? k : n;
    float *a = random_matrix((size_t)m * k), *b = random_matrix((size_t)k * n), *c = random_matrix((size_t)m * n);
    double flop = 2.0 * m * n * k;
#define SGEMM() cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, \
                            m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, n)
    // Warm up, and size each sample to at least min_sample_seconds so timer resolution is irrelevant.
    int calls = 1;
    for (;;) {
      double t0 = now_seconds();
      for (int i = 0; i < calls; i++) SGEMM();
      if (now_seconds() - t0 >= min_sample_seconds) break;
      calls *= 2;
    }
    double gflops[SAMPLES];
    for (int r = 0; r < SAMPLES; r++) {
      double t0 = now_seconds();
      for (int i = 0; i < calls; i++) SGEMM();
      gflops[r] = flop * calls / (now_seconds() - t0) * 1e-9;
    }
    qsort(gflops, SAMPLES, sizeof gflops[0], compare_doubles);
    printf("%s %.1f\n", argv[s], gflops[SAMPLES / 2]);
    fflush(stdout);
    free(a);
    free(b);
    free(c);
  }
  return 0;
}
