/* LVM2 over memory: the text metadata grammar, volume groups built from it, PV labels and
 * metadata areas, and logical volumes mapped as devices. Valid layouts read back exactly;
 * hostile ones (unterminated strings, deep nesting, huge counts, segments past their PV,
 * extents used twice, corrupt labels and areas) are clean errors, never a read outside the
 * disk (this test also runs under ASan). */
#include "unit.h"

#include "guestfs/dev.h"
#include "guestfs/lvm.h"
#include "guestfs/lvm_dev.h"
#include "guestfs/lvm_pv.h"
#include "guestfs/lvmtext.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define MiB	 (1u << 20)
#define DISK	 (8u * MiB)
#define PV_SIZE	 (3u * MiB)
#define PV0	 (1u * MiB) /* where the two PVs start on the disk */
#define PV1	 (4u * MiB)
#define MDA_OFF	 4096u
#define MDA_SIZE (64u << 10)
#define PE_START 256u  /* sectors: 128 KiB */
#define EXT	 4096u /* extent_size 8 sectors */

static const char UUID0[] = "AAAAAABBBBCCCCDDDDEEEEFFFFGGGGG0";
static const char UUID1[] = "AAAAAABBBBCCCCDDDDEEEEFFFFGGGGG1";

static uint8_t *disk;

static int mem_pread(void *opaque, void *buf, size_t len, uint64_t off)
{
	memcpy(buf, (uint8_t *)opaque + off, len);
	return 0;
}

static int mem_pwrite(void *opaque, const void *buf, size_t len, uint64_t off)
{
	memcpy((uint8_t *)opaque + off, buf, len);
	return 0;
}

static struct gdev dev(void)
{
	struct gdev d = {.opaque = disk, .pread = mem_pread, .pwrite = mem_pwrite, .size = DISK};
	return d;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* lvm2's checksum, computed here independently of kite's: zlib's CRC-32 without its
 * inversions, started from 0xf597a6cf. */
static uint32_t crc(const void *buf, size_t len)
{
	return ~(uint32_t)crc32(~0xf597a6cfu & 0xffffffffu, buf, (uInt)len);
}

/* Every 8 bytes of the disk hold their own offset, so a read shows where it came from. */
static void stamp(void)
{
	for (size_t o = 0; o < DISK; o += 8)
		put64(disk + o, o);
}

static void seal_label(uint8_t *pv)
{
	put32(pv + 512 + 16, crc(pv + 512 + 20, 512 - 20));
}

static void seal_mda(uint8_t *pv)
{
	put32(pv + MDA_OFF, crc(pv + MDA_OFF + 4, 512 - 4));
}

/* A PV at `start` whose one metadata area holds `text` at `text_off` of its ring. */
static void make_pv(uint64_t start, const char *uuid, const char *text, uint64_t text_off)
{
	uint8_t *pv = disk + start;
	memset(pv, 0, 4 * 512);
	memset(pv + MDA_OFF, 0, MDA_SIZE);
	uint8_t *l = pv + 512, *h = l + 32;
	memcpy(l, "LABELONE", 8);
	put64(l + 8, 1);
	put32(l + 20, 32);
	memcpy(l + 24, "LVM2 001", 8);
	memcpy(h, uuid, 32);
	put64(h + 32, PV_SIZE);
	put64(h + 40, PE_START * 512ull); /* data area, to the end; then the end of the list */
	put64(h + 72, MDA_OFF);		  /* one metadata area */
	put64(h + 80, MDA_SIZE);
	seal_label(pv);
	uint8_t *m = pv + MDA_OFF;
	memcpy(m + 4, " LVM2 x[5A%r0N*>", 16);
	put32(m + 20, 1);
	put64(m + 24, MDA_OFF);
	put64(m + 32, MDA_SIZE);
	size_t len = strlen(text) + 1; /* lvm2 counts the NUL */
	put64(m + 40, text_off);
	put64(m + 48, len);
	put32(m + 56, crc(text, len));
	seal_mda(pv);
	size_t first = len < MDA_SIZE - text_off ? len : MDA_SIZE - text_off;
	memcpy(m + text_off, text, first);
	memcpy(m + 512, text + first, len - first);
}

#define VG_HEAD                                                                                    \
	"vg0 {\n"                                                                                  \
	"\tid = \"VGVGVG-aaaa-bbbb-cccc-dddd-eeee-ffffff\"\n"                                      \
	"\tseqno = 3\n"                                                                            \
	"\tformat = \"lvm2\"\t\t# informational\n"                                                 \
	"\tstatus = [\"RESIZEABLE\", \"READ\", \"WRITE\"]\n"                                       \
	"\tflags = []\n"                                                                           \
	"\textent_size = 8\n"                                                                      \
	"\tphysical_volumes {\n"                                                                   \
	"\t\tpv0 {\n"                                                                              \
	"\t\t\tid = \"AAAAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGGG0\"\n"                                  \
	"\t\t\tdevice = \"/dev/sda1\"\n"                                                           \
	"\t\t\tstatus = [\"ALLOCATABLE\"]\n"                                                       \
	"\t\t\tdev_size = 6144\n"                                                                  \
	"\t\t\tpe_start = 256\n"                                                                   \
	"\t\t\tpe_count = 736\n"                                                                   \
	"\t\t}\n"                                                                                  \
	"\t\tpv1 {\n"                                                                              \
	"\t\t\tid = \"AAAAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGGG1\"\n"                                  \
	"\t\t\tpe_start = 256\n"                                                                   \
	"\t\t\tpe_count = 736\n"                                                                   \
	"\t\t}\n"                                                                                  \
	"\t}\n"

#define VG_TAIL                                                                                    \
	"}\n"                                                                                      \
	"# Generated by a test\n"                                                                  \
	"contents = \"Text Format Volume Group\"\n"                                                \
	"version = 1\n"                                                                            \
	"description = \"with \\\"escapes\\\" and \\\\\"\n"                                        \
	"creation_time = 1796678620\n"

/* "lin": extents 0-2 on pv0 from 10, 3-4 on pv1 from 0 (listed in the other order);
 * "str": 4 extents in 2 stripes of 1 KiB chunks, on pv0 and pv1 from extent 100;
 * "thin1": a thin LV; "hidden": a piece of another LV. */
#define LVS                                                                                        \
	"\tlogical_volumes {\n"                                                                    \
	"\t\tlin {\n"                                                                              \
	"\t\t\tid = \"LLLLLL-aaaa-bbbb-cccc-dddd-eeee-ffffff\"\n"                                  \
	"\t\t\tstatus = [\"READ\", \"WRITE\", \"VISIBLE\"]\n"                                      \
	"\t\t\tsegment_count = 2\n"                                                                \
	"\t\t\tsegment2 {\n"                                                                       \
	"\t\t\t\tstart_extent = 3\n"                                                               \
	"\t\t\t\textent_count = 2\n"                                                               \
	"\t\t\t\ttype = \"striped\"\n"                                                             \
	"\t\t\t\tstripe_count = 1\n"                                                               \
	"\t\t\t\tstripes = [\"pv1\", 0]\n"                                                         \
	"\t\t\t}\n"                                                                                \
	"\t\t\tsegment1 {\n"                                                                       \
	"\t\t\t\tstart_extent = 0\n"                                                               \
	"\t\t\t\textent_count = 3\n"                                                               \
	"\t\t\t\ttype = \"striped\"\n"                                                             \
	"\t\t\t\tstripe_count = 1\t# linear\n"                                                     \
	"\t\t\t\tstripes = [\n\t\t\t\t\t\"pv0\", 10\n\t\t\t\t]\n"                                  \
	"\t\t\t}\n"                                                                                \
	"\t\t}\n"                                                                                  \
	"\t\tstr {\n"                                                                              \
	"\t\t\tid = \"SSSSSS-aaaa-bbbb-cccc-dddd-eeee-ffffff\"\n"                                  \
	"\t\t\tstatus = [\"READ\", \"WRITE\", \"VISIBLE\"]\n"                                      \
	"\t\t\tsegment_count = 1\n"                                                                \
	"\t\t\tsegment1 {\n"                                                                       \
	"\t\t\t\tstart_extent = 0\n"                                                               \
	"\t\t\t\textent_count = 4\n"                                                               \
	"\t\t\t\ttype = \"striped\"\n"                                                             \
	"\t\t\t\tstripe_count = 2\n"                                                               \
	"\t\t\t\tstripe_size = 2\n"                                                                \
	"\t\t\t\tstripes = [\"pv0\", 100, \"pv1\", 100]\n"                                         \
	"\t\t\t}\n"                                                                                \
	"\t\t}\n"                                                                                  \
	"\t\tthin1 {\n"                                                                            \
	"\t\t\tid = \"TTTTTT-aaaa-bbbb-cccc-dddd-eeee-ffffff\"\n"                                  \
	"\t\t\tstatus = [\"READ\", \"WRITE\", \"VISIBLE\"]\n"                                      \
	"\t\t\tsegment_count = 1\n"                                                                \
	"\t\t\tsegment1 {\n"                                                                       \
	"\t\t\t\tstart_extent = 0\n"                                                               \
	"\t\t\t\textent_count = 1000\n"                                                            \
	"\t\t\t\ttype = \"thin\"\n"                                                                \
	"\t\t\t\tthin_pool = \"pool\"\n"                                                           \
	"\t\t\t\tdevice_id = 1\n"                                                                  \
	"\t\t\t}\n"                                                                                \
	"\t\t}\n"                                                                                  \
	"\t\thidden {\n"                                                                           \
	"\t\t\tid = \"HHHHHH-aaaa-bbbb-cccc-dddd-eeee-ffffff\"\n"                                  \
	"\t\t\tstatus = [\"READ\", \"WRITE\"]\n"                                                   \
	"\t\t\tsegment_count = 1\n"                                                                \
	"\t\t\tsegment1 {\n"                                                                       \
	"\t\t\t\tstart_extent = 0\n"                                                               \
	"\t\t\t\textent_count = 1\n"                                                               \
	"\t\t\t\ttype = \"striped\"\n"                                                             \
	"\t\t\t\tstripe_count = 1\n"                                                               \
	"\t\t\t\tstripes = [\"pv1\", 500]\n"                                                       \
	"\t\t\t}\n"                                                                                \
	"\t\t}\n"                                                                                  \
	"\t}\n"

static const char good[] = VG_HEAD LVS VG_TAIL;

static int setup(void **state)
{
	disk = calloc(1, DISK);
	return disk ? 0 : -1;
}

static int teardown(void **state)
{
	free(disk);
	return 0;
}

/* ---- the grammar ---- */

static int parse(const char *text)
{
	struct lvt t;
	int r = lvt_parse(&t, text, strlen(text), "test");
	if (!r)
		lvt_free(&t);
	return r;
}

static void grammar_reads_what_lvm2_writes(void **state)
{
	static const char text[] = "# a comment\n"
				   "top = -42\n"
				   "s {\n"
				   "  name = \"a \\\"quoted\\\" \\\\ string\"\n"
				   "  list = [\"x\", 1, 2\n    3, ]\n"
				   "  empty = []\n"
				   "  inner { deep { n = 7 } }\n"
				   "}\n"
				   "f = 1.5\n";
	struct lvt t;
	assert_int_equal(lvt_parse(&t, text, sizeof(text), "test"), 0);
	const struct lvt_node *top = lvt_get(&t.root, "top"), *s = lvt_get(&t.root, "s");
	assert_int_equal(top->type, LVT_INT);
	assert_int_equal(top->num, -42);
	assert_int_equal(s->type, LVT_SECTION);
	assert_string_equal(lvt_get(s, "name")->str, "a \"quoted\" \\ string");
	const struct lvt_node *list = lvt_get(s, "list");
	assert_int_equal(list->type, LVT_LIST);
	assert_int_equal(list->count, 4);
	assert_string_equal(list->child->str, "x");
	assert_int_equal(list->child->next->next->next->num, 3);
	assert_int_equal(lvt_get(s, "empty")->count, 0);
	assert_int_equal(lvt_get(lvt_get(lvt_get(s, "inner"), "deep"), "n")->num, 7);
	assert_string_equal(lvt_get(&t.root, "f")->str, "1.5");
	assert_null(lvt_get(s, "missing"));
	lvt_free(&t);
	/* a NUL ends the text: what follows is not read */
	static const char nul[] = "a = 1\0 this is { not parsed";
	assert_int_equal(lvt_parse(&t, nul, sizeof(nul), "test"), 0);
	lvt_free(&t);
}

static void grammar_refuses_hostile_text(void **state)
{
	static const char *const bad[] = {
	    "a = \"unterminated",
	    "a = \"ends in a backslash\\",
	    "a = [1, 2",
	    "s { a = 1",
	    "s { t { a = 1 }",
	    "}",
	    "a = 1 }",
	    "a = 99999999999999999999",
	    "a = -9223372036854775809",
	    "a = 1\na = 2",
	    "s { x = 1 }\ns { y = 2 }",
	    "a = 1x",
	    "a = ",
	    "a == 1",
	    "= 1",
	    "a",
	    "a = [[1]]",
	    "a = 'single'",
	    "a = bare",
	    "a = [1 2 bare]",
	    "\x01 = 1",
	    "na\xffme = 1",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse(bad[i]) != -1)
			fail_msg("accepted: %s", bad[i]);
	}
	assert_int_equal(parse("a = 9223372036854775807\nb = -9223372036854775808"), 0);
}

static char *nested(int depth)
{
	char *s = malloc((size_t)depth * 4 + 16);
	size_t o = 0;
	for (int i = 0; i < depth; i++)
		o += (size_t)sprintf(s + o, "a{");
	o += (size_t)sprintf(s + o, "x=1");
	for (int i = 0; i < depth; i++)
		s[o++] = '}';
	s[o] = 0;
	return s;
}

static void grammar_bounds_depth_and_size(void **state)
{
	char *ok = nested(LVT_MAX_DEPTH), *deep = nested(LVT_MAX_DEPTH + 1),
	     *abyss = nested(100000);
	assert_int_equal(parse(ok), 0);
	assert_int_equal(parse(deep), -1);
	assert_int_equal(parse(abyss), -1); /* refused before the stack is at risk */
	free(ok);
	free(deep);
	free(abyss);
	/* more entries than kite keeps */
	size_t n = LVT_MAX_ENTRIES + 1;
	char *big = malloc(n * 2 + 16);
	size_t o = (size_t)sprintf(big, "a = [");
	for (size_t i = 0; i < n; i++) {
		big[o++] = '1';
		big[o++] = ',';
	}
	big[o++] = ']';
	big[o] = 0;
	assert_int_equal(parse(big), -1);
	free(big);
}

/* ---- volume groups from text ---- */

static void vg_reads_pvs_lvs_and_segments(void **state)
{
	struct lvm_vg vg;
	assert_int_equal(lvm_vg_from_text(&vg, good, sizeof(good), "test"), 0);
	assert_string_equal(vg.name, "vg0");
	assert_int_equal(vg.seqno, 3);
	assert_int_equal(vg.extent_size, 8);
	assert_true(vg.writable);
	assert_int_equal(vg.npvs, 2);
	assert_string_equal(vg.pvs[1].uuid, UUID1);
	assert_int_equal(vg.pvs[1].pe_start, PE_START);
	assert_int_equal(vg.nlvs, 4);
	const struct lvm_lv *lin = &vg.lvs[0], *str = &vg.lvs[1], *thin = &vg.lvs[2];
	assert_string_equal(lin->name, "lin");
	assert_int_equal(lin->extents, 5);
	assert_int_equal(lin->nsegs, 2);
	assert_int_equal(lin->segs[0].start, 0); /* sorted by start */
	assert_int_equal(lin->segs[0].stripe[0].pe, 10);
	assert_int_equal(lin->segs[1].stripe[0].pv, 1);
	assert_true(lin->linear && lin->visible && lin->writable);
	assert_string_equal(lvm_lv_kind(lin), "linear");
	assert_false(str->linear);
	assert_int_equal(str->segs[0].stripes, 2);
	assert_int_equal(str->segs[0].stripe_size, 2);
	assert_string_equal(lvm_lv_kind(str), "striped");
	assert_string_equal(lvm_lv_kind(thin), "thin");
	assert_false(vg.lvs[3].visible);
	assert_int_equal(lvm_lv_size(&vg, lin), 5 * EXT);
	char path[300];
	lvm_lv_mapper_path(&vg, lin, path, sizeof(path));
	assert_string_equal(path, "/dev/mapper/vg0-lin");
	lvm_vg_free(&vg);
}

static void mapper_names_double_dashes(void **state)
{
	struct lvm_vg vg = {.name = "my-vg"};
	struct lvm_lv lv = {.name = "lv--root-"};
	char path[300];
	lvm_lv_mapper_path(&vg, &lv, path, sizeof(path));
	assert_string_equal(path, "/dev/mapper/my--vg-lv----root--");
	lvm_lv_path(&vg, &lv, path, sizeof(path));
	assert_string_equal(path, "/dev/my-vg/lv--root-");
}

/* `base` with its first occurrence of `from` replaced by `to`. */
static char *mutate_text(const char *base, const char *from, const char *to)
{
	const char *at = strstr(base, from);
	if (!at)
		fail_msg("the test text lacks %s", from);
	size_t pre = (size_t)(at - base), len = strlen(base) - strlen(from) + strlen(to);
	char *s = malloc(len + 1);
	memcpy(s, base, pre);
	strcpy(s + pre, to);
	strcat(s, at + strlen(from));
	return s;
}

static char *mutate(const char *from, const char *to)
{
	return mutate_text(good, from, to);
}

static void vg_refuses_inconsistent_metadata(void **state)
{
	static const char *const cases[][2] = {
	    /* counts */
	    {"segment_count = 2", "segment_count = 3"},
	    {"segment_count = 2", "segment_count = 99999999999"},
	    {"stripe_count = 2", "stripe_count = 4294967295"},
	    {"stripe_count = 2", "stripe_count = 0"},
	    {"[\"pv0\", 100, \"pv1\", 100]", "[\"pv0\", 100]"},
	    {"[\"pv0\", 100, \"pv1\", 100]", "[\"pv0\", 100, \"pv1\", 100, \"pv1\", 200]"},
	    {"[\"pv0\", 100, \"pv1\", 100]", "[100, \"pv0\", 100, \"pv1\"]"},
	    {"extent_count = 4", "extent_count = 5"}, /* 5 extents in 2 stripes */
	    {"stripe_size = 2", "stripe_size = 3"},   /* 3 sectors do not divide 16 */
	    /* segments beyond their PV, extents used twice */
	    {"[\"pv1\", 500]", "[\"pv1\", 736]"},
	    {"[\"pv1\", 500]", "[\"pv1\", -1]"},
	    {"[\"pv1\", 500]", "[\"pv1\", 18446744073709551615]"},
	    {"[\"pv0\", 100, \"pv1\", 100]", "[\"pv0\", 735, \"pv1\", 100]"},
	    {"[\"pv1\", 500]", "[\"pv0\", 12]"},  /* inside lin's extents 10-12 */
	    {"[\"pv1\", 500]", "[\"pv1\", 101]"}, /* inside str's second stripe */
	    {"[\"pv1\", 500]", "[\"pv9\", 1]"},
	    /* segments with overlaps or gaps */
	    {"start_extent = 3", "start_extent = 2"},
	    {"start_extent = 3", "start_extent = 4"},
	    {"start_extent = 3", "start_extent = 0"},
	    /* sizes, names, ids */
	    {"extent_size = 8", "extent_size = 0"},
	    {"lin {", "../etc {"},
	    {"lin {", "-lin {"},
	    {"lin {", "a/b {"},
	    {"vg0 {", ".. {"},
	    {"LLLLLL-aaaa", "LLLLLL-aa%a"},
	    {"AAAAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGGG1", "AAAAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGGG0"},
	    {"pe_count = 736", "pe_count = \"many\""},
	    {"physical_volumes {", "physical_volumez {"},
	    {"type = \"thin\"", "type = 7"},
	    {"# Generated", "vg1 { }\n#"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *text = mutate(cases[i][0], cases[i][1]);
		struct lvm_vg vg;
		if (lvm_vg_from_text(&vg, text, strlen(text), "test") != -1)
			fail_msg("accepted %s -> %s", cases[i][0], cases[i][1]);
		free(text);
	}
	/* 2^32 - 1 extents of 2^32 - 1 sectors: larger than 8 EiB */
	char *wide = mutate("extent_size = 8", "extent_size = 4294967295");
	char *huge = mutate_text(wide, "extent_count = 1000", "extent_count = 4294967295");
	struct lvm_vg vg;
	assert_int_equal(lvm_vg_from_text(&vg, wide, strlen(wide), "test"), 0);
	lvm_vg_free(&vg);
	assert_int_equal(lvm_vg_from_text(&vg, huge, strlen(huge), "test"), -1);
	free(wide);
	free(huge);
}

static void vg_marks_snapshots_and_stacked_lvs(void **state)
{
	char *text =
	    mutate("\t\tthin1 {\n", "\t\tsnap0 {\n"
				    "\t\t\tid = \"XXXXXX-aaaa-bbbb-cccc-dddd-eeee-ffffff\"\n"
				    "\t\t\tstatus = [\"READ\"]\n"
				    "\t\t\tsegment_count = 1\n"
				    "\t\t\tsegment1 {\n"
				    "\t\t\t\tstart_extent = 0\n"
				    "\t\t\t\textent_count = 1\n"
				    "\t\t\t\ttype = \"snapshot\"\n"
				    "\t\t\t\tchunk_size = 8\n"
				    "\t\t\t\torigin = \"lin\"\n"
				    "\t\t\t\tcow_store = \"hidden\"\n"
				    "\t\t\t}\n"
				    "\t\t}\n"
				    "\t\tthin1 {\n");
	struct lvm_vg vg;
	assert_int_equal(lvm_vg_from_text(&vg, text, strlen(text), "test"), 0);
	assert_true(vg.lvs[0].snapshot_origin);
	assert_string_equal(vg.lvs[4].name, "hidden");
	assert_string_equal(lvm_lv_kind(&vg.lvs[4]), "snapshot");
	char why[200];
	assert_true(lvm_lv_unwritable(&vg, &vg.lvs[0], why, sizeof(why)));
	assert_non_null(strstr(why, "snapshot"));
	lvm_vg_free(&vg);
	free(text);
	/* a segment over another LV (pvmove does this) is listed, not mapped */
	text = mutate("[\"pv1\", 0]", "[\"hidden\", 0]");
	assert_int_equal(lvm_vg_from_text(&vg, text, strlen(text), "test"), 0);
	assert_non_null(strstr(lvm_lv_kind(&vg.lvs[0]), "stacked"));
	lvm_vg_free(&vg);
	free(text);
}

/* ---- labels and metadata areas on a disk ---- */

static const struct lvm_place places[] = {
    {"/dev/sda1", PV0, PV_SIZE},
    {"/dev/sda2", PV1, PV_SIZE},
};

static void two_pvs(void)
{
	stamp();
	make_pv(PV0, UUID0, good, 512);
	make_pv(PV1, UUID1, good, 1024);
}

static int scan(struct lvm_set *s, size_t nplaces)
{
	struct gdev d = dev();
	assert_int_equal(lvm_scan(s, &d, places, nplaces), 0);
	return s->failed ? -1 : 0;
}

static void scan_finds_the_vg_over_two_pvs(void **state)
{
	struct lvm_set s;
	two_pvs();
	assert_int_equal(scan(&s, 2), 0);
	assert_int_equal(s.npvs, 2);
	assert_int_equal(s.nvgs, 1);
	assert_int_equal(s.vgs[0].pvs[0].found, 0);
	assert_int_equal(s.vgs[0].pvs[1].found, 1);
	assert_string_equal(s.pvs[1].device, "/dev/sda2");
	lvm_free(&s);
	/* the text wraps around the end of the ring buffer; the newest seqno wins */
	char *newer = mutate("seqno = 3", "seqno = 4");
	make_pv(PV1, UUID1, newer, MDA_SIZE - 700);
	free(newer);
	assert_int_equal(scan(&s, 2), 0);
	assert_int_equal(s.vgs[0].seqno, 4);
	lvm_free(&s);
	/* one PV missing: the VG is there, the LVs on the other PV are not readable */
	assert_int_equal(scan(&s, 1), 0);
	char why[200];
	assert_true(lvm_lv_unreadable(&s, &s.vgs[0], &s.vgs[0].lvs[0], why, sizeof(why)));
	assert_non_null(strstr(why, "pv1"));
	lvm_free(&s);
}

static void expect_failed(const char *what)
{
	struct lvm_set s;
	if (scan(&s, 2) != -1)
		fail_msg("accepted: %s", what);
	lvm_free(&s);
}

static void scan_refuses_corrupt_labels_and_areas(void **state)
{
	uint8_t *l = disk + PV0 + 512, *m = disk + PV0 + MDA_OFF;
	two_pvs();
	put32(l + 20, 500); /* the PV header outside the label sector */
	seal_label(disk + PV0);
	expect_failed("PV header offset");
	two_pvs();
	memset(l + 32 + 40, 0xff, 512 - 72); /* area lists without an end */
	seal_label(disk + PV0);
	expect_failed("unterminated area list");
	two_pvs();
	put64(l + 32 + 72, DISK); /* metadata area beyond the PV */
	seal_label(disk + PV0);
	expect_failed("metadata area beyond the PV");
	two_pvs();
	put64(l + 32 + 80, UINT64_MAX - 100);
	seal_label(disk + PV0);
	expect_failed("metadata area size overflows");
	two_pvs();
	l[32 + 5] = '/'; /* not an LVM2 UUID */
	seal_label(disk + PV0);
	expect_failed("PV UUID");
	two_pvs();
	m[100] ^= 1; /* the mda header's checksum */
	expect_failed("mda header checksum");
	two_pvs();
	put64(m + 40, MDA_SIZE + 512); /* text outside the area */
	seal_mda(disk + PV0);
	expect_failed("text offset");
	two_pvs();
	put64(m + 48, MDA_SIZE);
	seal_mda(disk + PV0);
	expect_failed("text size");
	two_pvs();
	put64(m + 48, 0); /* an empty text at an offset */
	seal_mda(disk + PV0);
	expect_failed("empty text");
	two_pvs();
	m[512 + 10] ^= 1; /* the text's checksum */
	expect_failed("text checksum");
	two_pvs();
	make_pv(PV1, UUID0, good, 512); /* the same PV twice */
	expect_failed("duplicate PV");
	/* a label with a wrong checksum is no label (lvm2 ignores it too): pv0 is missing */
	two_pvs();
	l[40] ^= 1;
	struct lvm_set s;
	assert_int_equal(scan(&s, 2), 0);
	assert_int_equal(s.npvs, 1);
	assert_int_equal(s.vgs[0].pvs[0].found, -1);
	lvm_free(&s);
}

static void scan_refuses_segments_past_the_partition(void **state)
{
	static const struct lvm_place small[] = {
	    {"/dev/sda1", PV0, PV_SIZE},
	    {"/dev/sda2", PV1, 1 * MiB}, /* "hidden" uses pv1's extent 500, at 2 MiB */
	};
	two_pvs();
	struct gdev d = dev();
	struct lvm_set s;
	assert_int_equal(lvm_scan(&s, &d, small, 2), 0);
	assert_true(s.failed);
	assert_int_equal(s.nvgs, 0);
	lvm_free(&s);
}

/* ---- logical volumes as devices ---- */

static uint64_t lin_disk_offset(uint64_t x)
{
	uint64_t le = x / EXT, pe_area = PE_START * 512ull;
	if (le < 3)
		return PV0 + pe_area + (10 + le) * EXT + x % EXT;
	return PV1 + pe_area + (le - 3) * EXT + x % EXT;
}

static uint64_t str_disk_offset(uint64_t x)
{
	uint64_t chunk = x / 1024, row = chunk / 2;
	uint64_t base = (chunk % 2 ? PV1 : PV0) + PE_START * 512ull + 100 * EXT;
	return base + row * 1024 + x % 1024;
}

static void expect_mapped(const struct gdev *lv, uint64_t (*where)(uint64_t))
{
	uint8_t *buf = malloc(lv->size);
	assert_int_equal(gdev_read(lv, buf, lv->size, 0), 0);
	for (uint64_t o = 0; o < lv->size; o += 8)
		if (get64(buf + o) != where(o))
			fail_msg("LV byte %llu came from %llu, not %llu", (unsigned long long)o,
				 (unsigned long long)get64(buf + o), (unsigned long long)where(o));
	/* an unaligned read across segment and chunk boundaries */
	uint8_t part[3 * 1024];
	assert_int_equal(gdev_read(lv, part, sizeof(part), 3 * EXT - 1500), 0);
	assert_memory_equal(part, buf + 3 * EXT - 1500, sizeof(part));
	assert_int_equal(gdev_read(lv, part, 16, lv->size - 8), -1);
	free(buf);
}

static void lvs_map_like_device_mapper(void **state)
{
	struct lvm_set s;
	two_pvs();
	assert_int_equal(scan(&s, 2), 0);
	const struct lvm_vg *vg = &s.vgs[0];
	struct gdev d = dev(), lin, str, other;
	struct lvm_map mlin, mstr, mother;
	assert_int_equal(lvm_map_init(&lin, &mlin, &s, vg, &vg->lvs[0], &d, true), 0);
	assert_int_equal(lvm_map_init(&str, &mstr, &s, vg, &vg->lvs[1], &d, false), 0);
	assert_int_equal(lin.size, 5 * EXT);
	assert_int_equal(str.size, 4 * EXT);
	expect_mapped(&lin, lin_disk_offset);
	expect_mapped(&str, str_disk_offset);
	/* a write across lin's two segments lands on both PVs */
	uint8_t data[200];
	memset(data, 0x5a, sizeof(data));
	assert_int_equal(gdev_write(&lin, data, sizeof(data), 3 * EXT - 100), 0);
	assert_memory_equal(disk + lin_disk_offset(3 * EXT - 100), data, 100);
	assert_memory_equal(disk + lin_disk_offset(3 * EXT), data, 100);
	assert_int_equal(get64(disk + lin_disk_offset(3 * EXT + 104)),
			 lin_disk_offset(3 * EXT + 104));
	assert_null(str.pwrite);
	/* striped and thin LVs refuse what kite does not do */
	assert_int_equal(lvm_map_init(&other, &mother, &s, vg, &vg->lvs[1], &d, true), -1);
	assert_int_equal(lvm_map_init(&other, &mother, &s, vg, &vg->lvs[2], &d, false), -1);
	lvm_map_free(&mlin);
	lvm_map_free(&mstr);
	lvm_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(grammar_reads_what_lvm2_writes),
	    cmocka_unit_test(grammar_refuses_hostile_text),
	    cmocka_unit_test(grammar_bounds_depth_and_size),
	    cmocka_unit_test(vg_reads_pvs_lvs_and_segments),
	    cmocka_unit_test(mapper_names_double_dashes),
	    cmocka_unit_test(vg_refuses_inconsistent_metadata),
	    cmocka_unit_test(vg_marks_snapshots_and_stacked_lvs),
	    cmocka_unit_test(scan_finds_the_vg_over_two_pvs),
	    cmocka_unit_test(scan_refuses_corrupt_labels_and_areas),
	    cmocka_unit_test(scan_refuses_segments_past_the_partition),
	    cmocka_unit_test(lvs_map_like_device_mapper),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
