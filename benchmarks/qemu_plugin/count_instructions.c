/*
 * A qemu TCG plugin that counts the guest instructions a program executes, for
 * benchmarks/neon_instructions.py: a proxy for the work a kernel does on the emulated CPU
 * (a Raspberry Pi 4's Cortex-A72 under qemu-user), repeatable and independent of the load.
 *
 * Every translated block adds its instruction count to one counter each time it runs (an
 * inline add, no callback). At exit the total is written to the file given as out=PATH.
 * Run the emulated program on one thread: the inline add is not atomic.
 *
 *   qemu-aarch64 -plugin libcount_instructions.so,out=/tmp/count.txt PROGRAM ...
 *
 * Built against qemu's plugin API header (qemu-plugin.h, API version 1: qemu 7.2, Debian
 * bookworm), which neon_instructions.py takes from Debian's qemu source package.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

static uint64_t executed;
static char output_path[4096];

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
  (void)id;
  qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &executed, qemu_plugin_tb_n_insns(tb));
}

static void on_exit(qemu_plugin_id_t id, void *userdata) {
  (void)id;
  (void)userdata;
  FILE *file = fopen(output_path, "w");
  if (file == NULL) {
    fprintf(stderr, "count_instructions: cannot write %s\n", output_path);
    return;
  }
  fprintf(file, "%" PRIu64 "\n", executed);
  fclose(file);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
  (void)info;
  for (int i = 0; i < argc; ++i) {
    if (strncmp(argv[i], "out=", 4) == 0) {
      snprintf(output_path, sizeof(output_path), "%s", argv[i] + 4);
    }
  }
  if (output_path[0] == '\0') {
    fprintf(stderr, "count_instructions: give the output file as out=PATH\n");
    return -1;
  }
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
  qemu_plugin_register_atexit_cb(id, on_exit, NULL);
  return 0;
}
