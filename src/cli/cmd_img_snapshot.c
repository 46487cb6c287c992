/* kite img snapshot (-l, -c, -a, -d) and the snapshot table `info` shows, in qemu-img's
 * layout. */
#include "cli/cmd_img.h"
#include "util/err.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

json_t *img_snapshots_json(struct blk *b)
{
	if (!blk_can(b, BLK_CAP_SNAPSHOTS))
		return NULL;
	struct blk_snapshot *sn;
	int n;
	if (blk_snapshot_list(b, &sn, &n) < 0 || n == 0)
		return NULL;
	json_t *list = json_array();
	for (int i = 0; i < n; i++) {
		json_t *o = json_object();
		if (sn[i].icount != UINT64_MAX)
			json_object_set_new(o, "icount", json_integer((json_int_t)sn[i].icount));
		json_object_set_new(o, "vm-clock-nsec",
				    json_integer((json_int_t)(sn[i].vm_clock_nsec % 1000000000)));
		json_object_set_new(o, "name", json_string(sn[i].name));
		json_object_set_new(o, "date-sec", json_integer(sn[i].date_sec));
		json_object_set_new(o, "date-nsec", json_integer(sn[i].date_nsec));
		json_object_set_new(o, "vm-clock-sec",
				    json_integer((json_int_t)(sn[i].vm_clock_nsec / 1000000000)));
		json_object_set_new(o, "id", json_string(sn[i].id));
		json_object_set_new(o, "vm-state-size",
				    json_integer((json_int_t)sn[i].vm_state_size));
		json_array_append_new(list, o);
	}
	free(sn);
	return list;
}

void img_snapshots_print(json_t *list)
{
	printf("%-9s %-17s%8s%20s%13s%11s\n", "ID", "TAG", "VM SIZE", "DATE", "VM CLOCK", "ICOUNT");
	size_t i;
	json_t *o;
	json_array_foreach(list, i, o)
	{
		char date[32] = "", clock[64], size[32], icount[32] = "";
		time_t t = (time_t)json_integer_value(json_object_get(o, "date-sec"));
		struct tm tm;
		if (localtime_r(&t, &tm))
			strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
		uint64_t secs = (uint64_t)json_integer_value(json_object_get(o, "vm-clock-sec"));
		uint64_t ns = (uint64_t)json_integer_value(json_object_get(o, "vm-clock-nsec"));
		snprintf(clock, sizeof(clock),
			 "%02" PRIu64 ":%02" PRIu64 ":%02" PRIu64 ".%03" PRIu64, secs / 3600,
			 (secs / 60) % 60, secs % 60, (ns / 1000000) % 1000);
		img_human_size((uint64_t)json_integer_value(json_object_get(o, "vm-state-size")),
			       size, sizeof(size));
		json_t *ic = json_object_get(o, "icount");
		if (ic)
			snprintf(icount, sizeof(icount), "%lld", (long long)json_integer_value(ic));
		printf("%-9s %-17s%8s%20s%13s%11s\n", json_string_value(json_object_get(o, "id")),
		       json_string_value(json_object_get(o, "name")), size, date, clock, icount);
	}
}

int img_snapshot(int argc, char **argv)
{
	static const struct option longopts[] = {{"force-share", no_argument, NULL, 'U'},
						 {NULL, 0, NULL, 0}};
	const char *fmt = NULL, *name = NULL;
	char action = 0;
	bool quiet = false;
	unsigned share = 0;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":f:la:c:d:qU", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			fmt = optarg;
			break;
		case 'l':
		case 'a':
		case 'c':
		case 'd':
			if (action)
				return img_usage_error("snapshot", "only one of -l, -a, -c, -d");
			action = (char)c;
			name = optarg;
			break;
		case 'q':
			quiet = true;
			break;
		case 'U':
			share = BLK_O_SHARE;
			break;
		case ':':
			return img_usage_error("snapshot", "option '%s' needs an argument",
					       argv[optind - 1]);
		default:
			return img_usage_error("snapshot", "unknown option '%s'", argv[optind - 1]);
		}
	}
	(void)quiet;
	if (argc - optind != 1)
		return img_usage_error("snapshot", "expecting one filename");
	if (!action)
		action = 'l';
	/* snapshots never read guest data, but qemu-img snapshot opens the backing chain all
	 * the same: a missing backing file or a loop in the chain fails the verb */
	struct blk *b =
	    blk_open(argv[optind], fmt,
		     (action == 'l' ? BLK_O_RDONLY : BLK_O_RDWR) | share | img_source_flags());
	if (!b)
		return 1;
	int r = 0;
	if (!blk_can(b, BLK_CAP_SNAPSHOTS)) {
		r = kite_error("snapshots are not supported by format '%s'", blk_format_name(b));
	} else if (action == 'l') {
		json_t *list = img_snapshots_json(b);
		struct blk_snapshot *sn;
		int n;
		r = blk_snapshot_list(b, &sn, &n);
		free(sn);
		if (r == 0 && list) {
			printf("Snapshot list:\n");
			img_snapshots_print(list);
		}
		json_decref(list);
	} else if (action == 'c') {
		r = blk_snapshot_create(b, name); /* its errors name the snapshot */
	} else if (action == 'a') {
		if (blk_snapshot_apply(b, name) < 0)
			r = kite_error("could not apply snapshot '%s'", name);
	} else {
		if (blk_snapshot_delete(b, name) < 0)
			r = kite_error("could not delete snapshot '%s'", name);
	}
	if (r == 0 && action != 'l')
		r = blk_flush(b);
	blk_close(b);
	return r < 0 ? 1 : 0;
}
