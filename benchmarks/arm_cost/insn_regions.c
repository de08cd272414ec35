/*
 * insn_regions: a QEMU TCG plugin (qemu-user) that counts, per translated block, the
 * guest instructions executed between calls of two marker functions of the guest,
 * sbnn_cost_begin() and sbnn_cost_end() (found by symbol: the guest must keep its
 * symbol table). Used by benchmarks/arm_cost/arm_cost.py (docs/benchmarks.md).
 *
 * Counting: every translated block gets an inline 64-bit execution counter (QEMU adds 1
 * in the generated code; no callback per block, so counting is cheap and exact). At
 * sbnn_cost_begin the counters are snapshot; at sbnn_cost_end every block that ran in
 * between is written to the output file:
 *
 *   region <index> <instructions>
 *   b <block address, hex> <instructions in the block> <executions> <library instructions>
 *   end
 *
 * Library instructions: blocks of libc's string and allocator routines (memcpy, memset,
 * malloc, free, ...) and blocks without a symbol (a static binary's ifunc PLT stubs) are charged, in addition
 * to their own "b" lines, to the last executed block that ended with a call (BL/BLR), so
 * that the analysis can attribute a memcpy to the stage that called it. AArch64 guests
 * only (other guests: the last column is 0).
 *
 * Blocks are runs of instructions without a branch in the middle; a block address may
 * appear twice when QEMU translated it twice (the analysis adds them up).
 * Single-threaded guests only (the counters are not atomic).
 *
 * Plugin argument: out=<file>. Written against QEMU's plugin API version 1 (QEMU 7.2,
 * Debian 12's qemu-user); the header qemu-plugin.h comes from the installed qemu's
 * source package (arm_cost.py fetches it).
 *
 *   gcc -shared -fPIC -O2 -I<dir with qemu-plugin.h> -o libinsn_regions.so insn_regions.c
 *   qemu-aarch64 -plugin ./libinsn_regions.so,out=counts.txt ./program
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qemu-plugin.h>

#if QEMU_PLUGIN_VERSION < 1
#error "insn_regions needs the QEMU plugin API version 1 or later"
#endif

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

struct block {
  uint64_t execs;      /* incremented by the generated code at every execution */
  uint64_t lib;        /* library instructions run by calls made from this block */
  uint64_t execs0;     /* both at the last sbnn_cost_begin */
  uint64_t lib0;
  uint64_t vaddr;
  uint32_t insns;
  uint32_t is_library;
};

static struct block** table;
static size_t table_len, table_cap;
static FILE* out_file;
static int aarch64_guest;
static int regions_done;
static int in_region;
static struct block* last_call_site;

static int library_symbol(const char* s) {
  if (s == NULL) return 1; /* PLT / ifunc stubs of a static binary */
  static const char* const prefixes[] = {"mem",    "__mem",   "bcmp",     "__bzero",      "str",
                                         "__str",  "malloc",  "__malloc", "__libc_malloc", "_int_",
                                         "free",   "__free",  "__libc_free", "cfree",      "unlink_chunk",
                                         "tcache", "sysmalloc", "calloc", "__libc_calloc"};
  for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; ++i)
    if (strncmp(s, prefixes[i], strlen(prefixes[i])) == 0) return 1;
  return 0;
}

/* True when the 4-byte AArch64 instruction word is BL imm26 or BLR Xn. */
static int aarch64_is_call(uint32_t w) {
  return (w & 0xFC000000u) == 0x94000000u || (w & 0xFFFFFC1Fu) == 0xD63F0000u;
}

static void call_site_cb(unsigned int vcpu, void* b) {
  (void)vcpu;
  last_call_site = (struct block*)b;
}

static void library_cb(unsigned int vcpu, void* b) {
  (void)vcpu;
  if (in_region && last_call_site) last_call_site->lib += ((struct block*)b)->insns;
}

static void begin_cb(unsigned int vcpu, void* unused) {
  (void)vcpu;
  (void)unused;
  for (size_t i = 0; i < table_len; ++i) {
    table[i]->execs0 = table[i]->execs;
    table[i]->lib0 = table[i]->lib;
  }
  last_call_site = NULL;
  in_region = 1;
}

static void end_cb(unsigned int vcpu, void* unused) {
  (void)vcpu;
  (void)unused;
  if (!in_region) return;
  in_region = 0;
  uint64_t total = 0;
  for (size_t i = 0; i < table_len; ++i) total += (table[i]->execs - table[i]->execs0) * table[i]->insns;
  fprintf(out_file, "region %d %" PRIu64 "\n", regions_done++, total);
  for (size_t i = 0; i < table_len; ++i) {
    const struct block* b = table[i];
    const uint64_t e = b->execs - b->execs0, l = b->lib - b->lib0;
    if (e || l)
      fprintf(out_file, "b %" PRIx64 " %" PRIu32 " %" PRIu64 " %" PRIu64 "\n", b->vaddr, b->insns, e, l);
  }
  fputs("end\n", out_file);
  fflush(out_file);
}

static void translate_cb(qemu_plugin_id_t id, struct qemu_plugin_tb* tb) {
  (void)id;
  const size_t n = qemu_plugin_tb_n_insns(tb);
  if (n == 0) return;
  struct block* b = calloc(1, sizeof *b);
  if (b == NULL) abort();
  if (table_len == table_cap) {
    table_cap = table_cap ? 2 * table_cap : 8192;
    table = realloc(table, table_cap * sizeof *table);
    if (table == NULL) abort();
  }
  table[table_len++] = b;
  b->vaddr = qemu_plugin_tb_vaddr(tb);
  b->insns = (uint32_t)n;
  /* The counter first: the marker callbacks below then see this execution counted. */
  qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &b->execs, 1);

  const char* sym = qemu_plugin_insn_symbol(qemu_plugin_tb_get_insn(tb, 0));
  if (sym && strcmp(sym, "sbnn_cost_begin") == 0) {
    qemu_plugin_register_vcpu_tb_exec_cb(tb, begin_cb, QEMU_PLUGIN_CB_NO_REGS, NULL);
    return;
  }
  if (sym && strcmp(sym, "sbnn_cost_end") == 0) {
    qemu_plugin_register_vcpu_tb_exec_cb(tb, end_cb, QEMU_PLUGIN_CB_NO_REGS, NULL);
    return;
  }
  if (!aarch64_guest) return;
  if (library_symbol(sym)) {
    b->is_library = 1;
    qemu_plugin_register_vcpu_tb_exec_cb(tb, library_cb, QEMU_PLUGIN_CB_NO_REGS, b);
    return;
  }
  struct qemu_plugin_insn* last = qemu_plugin_tb_get_insn(tb, n - 1);
  if (qemu_plugin_insn_size(last) == 4) {
    uint32_t w;
    memcpy(&w, qemu_plugin_insn_data(last), 4);
    if (aarch64_is_call(w))
      qemu_plugin_register_vcpu_tb_exec_cb(tb, call_site_cb, QEMU_PLUGIN_CB_NO_REGS, b);
  }
}

static void exit_cb(qemu_plugin_id_t id, void* unused) {
  (void)id;
  (void)unused;
  if (out_file) fflush(out_file);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t* info, int argc,
                                           char** argv) {
  const char* path = NULL;
  for (int i = 0; i < argc; ++i)
    if (strncmp(argv[i], "out=", 4) == 0) path = argv[i] + 4;
  if (path == NULL || *path == '\0') {
    fprintf(stderr, "insn_regions: missing plugin argument out=<file>\n");
    return -1;
  }
  out_file = fopen(path, "w");
  if (out_file == NULL) {
    perror(path);
    return -1;
  }
  aarch64_guest = info && info->target_name && strcmp(info->target_name, "aarch64") == 0;
  qemu_plugin_register_vcpu_tb_trans_cb(id, translate_cb);
  qemu_plugin_register_atexit_cb(id, exit_cb, NULL);
  return 0;
}
