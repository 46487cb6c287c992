/* Split virtqueue walking against well-formed and hostile descriptor chains. */
#include "unit.h"
#include "vdriver.h"
#include "virtio/virtqueue.h"

#include <stdlib.h>

#define RAM (1u << 20)

struct fx {
	uint8_t *ram;
	struct guest_mem mem;
	struct virtq q;
	struct tq t;
	struct virtq_elem e;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	f->ram = aligned_alloc(4096, RAM);
	memset(f->ram, 0, RAM);
	gmem_init_from(&f->mem, f->ram, RAM);
	tq_init(&f->t, &f->mem, 0x1000, 16);
	virtq_reset(&f->q, &f->mem, 256);
	f->q.size = 16;
	f->q.desc_gpa = f->t.desc;
	f->q.avail_gpa = f->t.avail;
	f->q.used_gpa = f->t.used;
	f->q.indirect = true;
	assert_int_equal(virtq_enable(&f->q), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	free(f->ram);
	free(f);
	return 0;
}

static void test_chain_views(void **state)
{
	struct fx *f = *state;
	memcpy(f->ram + 0x10000, "hello, ", 7);
	memcpy(f->ram + 0x20000, "world", 5);
	tq_desc(&f->t, 3, 0x10000, 7, VIRTQ_DESC_F_NEXT, 5);
	tq_desc(&f->t, 5, 0x20000, 5, VIRTQ_DESC_F_NEXT, 9);
	tq_desc(&f->t, 9, 0x30000, 100, VIRTQ_DESC_F_WRITE, 0);
	assert_int_equal(virtq_pop(&f->q, &f->e), 0); /* nothing available yet */
	tq_avail(&f->t, 3);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(f->e.head, 3);
	assert_int_equal(f->e.n_out, 2);
	assert_int_equal(f->e.n_in, 1);
	assert_int_equal(f->e.out_len, 12);
	assert_int_equal(f->e.in_len, 100);
	char buf[16] = {0};
	assert_int_equal(virtq_elem_read(&f->e, 0, buf, sizeof(buf)), 12);
	assert_memory_equal(buf, "hello, world", 12);
	assert_int_equal(virtq_elem_read(&f->e, 5, buf, 4), 4);
	assert_memory_equal(buf, ", wo", 4);
	assert_int_equal(virtq_elem_write(&f->e, 98, "xyz", 3), 2);
	assert_memory_equal(f->ram + 0x30000 + 98, "xy", 2);
	virtq_push(&f->q, f->e.head, 7);
	assert_int_equal(tq_used_idx(&f->t), 1);
	uint32_t id, len;
	tq_used_elem(&f->t, 0, &id, &len);
	assert_int_equal(id, 3);
	assert_int_equal(len, 7);
	assert_true(virtq_should_notify(&f->q));
	assert_int_equal(virtq_pop(&f->q, &f->e), 0);
}

static void test_indirect(void **state)
{
	struct fx *f = *state;
	uint64_t table = 0x40000;
	tq_desc_at(&f->mem, table, 0, 0x10000, 16, VIRTQ_DESC_F_NEXT, 1);
	tq_desc_at(&f->mem, table, 1, 0x11000, 512, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
	tq_desc_at(&f->mem, table, 2, 0x12000, 1, VIRTQ_DESC_F_WRITE, 0);
	tq_desc(&f->t, 0, table, 3 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	tq_avail(&f->t, 0);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(f->e.n_out, 1);
	assert_int_equal(f->e.n_in, 2);
	assert_int_equal(f->e.in_len, 513);
	assert_ptr_equal(f->e.in[1].base, f->ram + 0x12000);
}

/* Each hostile chain is refused with an error, never followed. */
static void expect_refused(struct fx *f, uint16_t head)
{
	tq_avail(&f->t, head);
	f->q.error[0] = 0;
	assert_int_equal(virtq_pop(&f->q, &f->e), -1);
	assert_true(f->q.error[0]); /* a reason for the device's log */
}

static void test_loop(void **state)
{
	struct fx *f = *state;
	tq_desc(&f->t, 0, 0x10000, 8, VIRTQ_DESC_F_NEXT, 1);
	tq_desc(&f->t, 1, 0x10000, 8, VIRTQ_DESC_F_NEXT, 0);
	expect_refused(f, 0);
}

static void test_self_loop_indirect(void **state)
{
	struct fx *f = *state;
	uint64_t table = 0x40000;
	tq_desc_at(&f->mem, table, 0, 0x10000, 8, VIRTQ_DESC_F_NEXT, 0);
	tq_desc(&f->t, 0, table, 16, VIRTQ_DESC_F_INDIRECT, 0);
	expect_refused(f, 0);
}

static void test_nested_indirect(void **state)
{
	struct fx *f = *state;
	uint64_t table = 0x40000;
	tq_desc_at(&f->mem, table, 0, table, 16, VIRTQ_DESC_F_INDIRECT, 0);
	tq_desc(&f->t, 0, table, 16, VIRTQ_DESC_F_INDIRECT, 0);
	expect_refused(f, 0);
}

static void test_outside_ram(void **state)
{
	struct fx *f = *state;
	tq_desc(&f->t, 0, RAM - 8, 16, 0, 0); /* straddles the end of RAM */
	expect_refused(f, 0);
	tq_desc(&f->t, 1, 0xfffffffffffffff0ull, 0x20, VIRTQ_DESC_F_WRITE, 0); /* wraps */
	expect_refused(f, 1);
}

static void test_bad_indexes(void **state)
{
	struct fx *f = *state;
	tq_desc(&f->t, 0, 0x10000, 8, VIRTQ_DESC_F_NEXT, 16); /* next past the table */
	expect_refused(f, 0);
	expect_refused(f, 99); /* head past the table */
}

static void test_readable_after_writable(void **state)
{
	struct fx *f = *state;
	tq_desc(&f->t, 0, 0x10000, 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	tq_desc(&f->t, 1, 0x11000, 8, 0, 0);
	expect_refused(f, 0);
}

static void test_avail_index_jump(void **state)
{
	struct fx *f = *state;
	uint8_t *ring = f->ram + f->t.avail;
	uint16_t idx = 1000; /* 1000 entries "available" on a 16-entry queue */
	memcpy(ring + 2, &idx, 2);
	assert_int_equal(virtq_pop(&f->q, &f->e), -1);
}

static void test_enable_checks(void **state)
{
	struct fx *f = *state;
	struct virtq q;
	virtq_reset(&q, &f->mem, 256);
	q.size = 24; /* not a power of two */
	q.desc_gpa = 0x1000;
	q.avail_gpa = 0x2000;
	q.used_gpa = 0x3000;
	assert_int_equal(virtq_enable(&q), -1);
	q.size = 512; /* above the maximum */
	assert_int_equal(virtq_enable(&q), -1);
	q.size = 16;
	q.used_gpa = RAM - 16; /* used ring runs past RAM */
	assert_int_equal(virtq_enable(&q), -1);
	q.used_gpa = 0x3002; /* misaligned */
	assert_int_equal(virtq_enable(&q), -1);
	q.used_gpa = 0x3000;
	assert_int_equal(virtq_enable(&q), 0);
}

static void test_event_idx(void **state)
{
	struct fx *f = *state;
	f->q.event_idx = true;
	uint8_t *used_event = f->ram + f->t.avail + 4 + 2 * 16;
	for (int i = 0; i < 3; i++) {
		tq_desc(&f->t, i, 0x10000, 8, 0, 0);
		tq_avail(&f->t, i);
	}
	uint16_t ev = 2; /* interrupt me when used idx passes 2 */
	memcpy(used_event, &ev, 2);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(virtq_pop(&f->q, &f->e), 1);
		virtq_push(&f->q, f->e.head, 0);
		bool want = virtq_should_notify(&f->q);
		/* first push always notifies (nothing signalled yet), then only at idx 3 */
		assert_int_equal(want, i == 0 || i == 2);
	}
	uint16_t avail_event;
	memcpy(&avail_event, f->ram + f->t.used + 4 + 8 * 16, 2);
	assert_int_equal(avail_event, 3);
}

/* Random descriptor tables (with random indirect tables): every chain popped lies inside
 * guest RAM, whatever the bytes. Run under ASan too. */
static void test_random_tables(void **state)
{
	struct fx *f = *state;
	uint32_t seed = 12345;
	int popped = 0, refused = 0;
	for (int round = 0; round < 20000; round++) {
		for (int i = 0; i < 16; i++) {
			seed = seed * 1103515245 + 12345;
			uint64_t addr = (seed >> 8) % (RAM + 8192);
			if (seed & 1)
				addr = 0x40000 + (seed >> 20) % 64 * 16; /* an indirect table */
			seed = seed * 1103515245 + 12345;
			uint32_t len = (seed >> 4) % 9000;
			if ((seed >> 24) % 4 == 0)
				len = 16 * ((seed >> 20) % 8);
			uint16_t flags = (seed >> 16) & 7, next = (seed >> 19) % 20;
			tq_desc(&f->t, i, addr, len, flags, next);
			seed = seed * 1103515245 + 12345;
			tq_desc_at(&f->mem, 0x40000, (seed >> 8) % 64, seed, seed >> 3,
				   (seed >> 13) & 7, (seed >> 17) % 70);
		}
		seed = seed * 1103515245 + 12345;
		tq_avail(&f->t, (seed >> 10) % 18);
		int r = virtq_pop(&f->q, &f->e);
		assert_true(r == 1 || r == -1);
		if (r < 0) {
			refused++;
			continue;
		}
		popped++;
		for (unsigned i = 0; i < f->e.n_out + f->e.n_in; i++) {
			const struct virtq_iov *v =
			    i < f->e.n_out ? &f->e.out[i] : &f->e.in[i - f->e.n_out];
			assert_true(v->base >= f->ram && v->base + v->len <= f->ram + RAM);
		}
		virtq_push(&f->q, f->e.head, 0);
	}
	assert_true(popped > 100 && refused > 100); /* both paths exercised */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_chain_views, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_indirect, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_loop, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_self_loop_indirect, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_nested_indirect, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_outside_ram, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_indexes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_readable_after_writable, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_avail_index_jump, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_enable_checks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_event_idx, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_random_tables, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
