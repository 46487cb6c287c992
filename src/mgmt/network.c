#include "mgmt/network.h"
#include "mgmt/def_store.h"
#include "mgmt/fileutil.h"
#include "net/bridge.h"
#include "util/err.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NETWORK_FILE_MAX (64 << 10)

static int store_dir(const struct mgmt_dirs *d, char *buf, size_t size)
{
	if (mgmt_path(buf, size, d->state, "networks", "") < 0)
		return -1;
	return mkdir_parents(buf, 0755);
}

static int store_path(const struct mgmt_dirs *d, const char *name, const char *suffix, char *buf,
		      size_t size)
{
	char dir[PATH_MAX];
	if (!machine_name_check_quiet(name))
		return kite_error("'%s' is not a network name (kite net-list --all)", name);
	if (store_dir(d, dir, sizeof(dir)) < 0)
		return -1;
	return mgmt_path(buf, size, dir, name, suffix);
}

/* RUN/networks/NAME/FILE (FILE "" for the directory itself). */
static int run_path(const struct mgmt_dirs *d, const char *name, const char *file, char *buf,
		    size_t size)
{
	char dir[PATH_MAX];
	if (mgmt_path(dir, sizeof(dir), d->run, "networks/", name) < 0)
		return -1;
	if (!*file)
		return snprintf(buf, size, "%s", dir) < (int)size ? 0 : kite_error("path too long");
	return mgmt_path(buf, size, dir, "", file);
}

int network_lock(const struct mgmt_dirs *d, const char *name)
{
	char path[PATH_MAX];
	if (store_path(d, name, ".lock", path, sizeof(path)) < 0)
		return -1;
	return lock_file(path);
}

int network_load(const struct mgmt_dirs *d, const char *name, struct network_config *n)
{
	char path[PATH_MAX], *data;
	size_t len;
	if (store_path(d, name, ".json", path, sizeof(path)) < 0)
		return -1;
	if (read_file_all(path, NETWORK_FILE_MAX, &data, &len) < 0) {
		if (errno == ENOENT)
			return kite_error("no network named '%s' (kite net-list --all shows them)",
					  name);
		return kite_error_errno(errno, "cannot read network definition %s", path);
	}
	json_error_t je;
	json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
	free(data);
	if (!root)
		return kite_error("network definition %s is corrupt: line %d: %s", path, je.line,
				  je.text);
	int r = network_config_from_json(root, path, n);
	json_decref(root);
	if (r == 0 && strcmp(n->name, name))
		return kite_error("network definition %s names network '%s'", path, n->name);
	return r;
}

int network_load_quiet(const struct mgmt_dirs *d, const char *name, struct network_config *n)
{
	/* The loaders report as they go; stderr points at /dev/null meanwhile. */
	fflush(stderr);
	int saved = dup(STDERR_FILENO), null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (saved >= 0 && null >= 0)
		dup2(null, STDERR_FILENO);
	int r = network_load(d, name, n);
	if (saved >= 0) {
		dup2(saved, STDERR_FILENO);
		close(saved);
	}
	if (null >= 0)
		close(null);
	return r;
}

int network_save(const struct mgmt_dirs *d, const struct network_config *n)
{
	char path[PATH_MAX];
	if (network_config_check(n, n->name) < 0 ||
	    store_path(d, n->name, ".json", path, sizeof(path)) < 0)
		return -1;
	json_t *root = network_config_to_json(n);
	char *text = root ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
	json_decref(root);
	if (!text)
		return kite_error("out of memory");
	size_t len = strlen(text);
	text[len] = '\n'; /* json_dumps's NUL becomes the last newline */
	int r = write_file_atomic(path, text, len + 1, 0644);
	free(text);
	return r;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int network_list_names(const struct mgmt_dirs *d, char ***names)
{
	char dir[PATH_MAX];
	if (store_dir(d, dir, sizeof(dir)) < 0)
		return -1;
	DIR *dp = opendir(dir);
	if (!dp)
		return kite_error_errno(errno, "cannot list %s", dir);
	char **out = NULL;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(dp))) {
		size_t len = strlen(e->d_name);
		if (len <= 5 || strcmp(e->d_name + len - 5, ".json") || e->d_name[0] == '.')
			continue;
		char **nb = realloc(out, (size_t)(n + 1) * sizeof(*out));
		if (!nb || !(nb[n] = strndup(e->d_name, len - 5))) {
			out = nb ? nb : out;
			closedir(dp);
			def_free_names(out, n);
			return kite_error("out of memory");
		}
		out = nb;
		n++;
	}
	closedir(dp);
	if (n > 1)
		qsort(out, (size_t)n, sizeof(*out), cmp_names);
	*names = out;
	return n;
}

/* The others' definitions must not share the bridge or overlap the subnet; a free kitebrN
 * is picked when `n` has no bridge yet. */
static int check_against_others(const struct mgmt_dirs *d, struct network_config *n)
{
	char **names;
	int count = network_list_names(d, &names);
	if (count < 0)
		return -1;
	struct network_config *others = calloc((size_t)count + 1, sizeof(*others));
	int nothers = 0, r = 0;
	if (!others) {
		def_free_names(names, count);
		return kite_error("out of memory");
	}
	for (int i = 0; i < count; i++) {
		if (!strcmp(names[i], n->name))
			continue;
		/* A corrupt definition is skipped here; net-list shows it. */
		bool ok = network_load_quiet(d, names[i], &others[nothers]) == 0;
		if (ok)
			nothers++;
	}
	def_free_names(names, count);
	for (int i = 0; i < nothers && r == 0; i++) {
		const struct network_config *o = &others[i];
		if (n->bridge[0] && !strcmp(o->bridge, n->bridge))
			r = kite_error("network %s: bridge %s belongs to network %s", n->name,
				       n->bridge, o->name);
		else if (network_subnets_overlap(n, o)) {
			char a[24], b[24];
			network_ip_text(n, a);
			network_ip_text(o, b);
			r = kite_error("network %s: its subnet (%s) overlaps network %s's (%s)",
				       n->name, a, o->name, b);
		}
	}
	for (unsigned k = 0; r == 0 && !n->bridge[0] && k < 1000; k++) {
		char br[NIC_IFNAME_MAX + 1];
		snprintf(br, sizeof(br), "kitebr%u", k % 1000);
		bool used = host_if_exists(br);
		for (int i = 0; i < nothers && !used; i++)
			used = !strcmp(others[i].bridge, br);
		if (!used)
			memcpy(n->bridge, br, sizeof(br));
	}
	free(others);
	if (r == 0 && !n->bridge[0])
		r = kite_error("network %s: no free kitebrN bridge name", n->name);
	return r;
}

int network_define(const struct mgmt_dirs *d, struct network_config *n)
{
	if (network_config_check(n, n->name) < 0)
		return -1;
	if (!n->uuid[0] && uuid_generate_str(n->uuid) < 0)
		return -1;
	if (n->mode == NETWORK_BRIDGE && !host_if_is_bridge(n->bridge))
		return kite_error("network %s: %s is not a bridge on this host", n->name,
				  n->bridge);
	/* A bridge kite is to make must not be someone else's interface. */
	struct network_config old;
	bool ours = network_load_quiet(d, n->name, &old) == 0 && !strcmp(old.bridge, n->bridge) &&
		    network_is_active(d, &old);
	if (n->mode != NETWORK_BRIDGE && n->bridge[0] && host_if_exists(n->bridge) && !ours)
		return kite_error("network %s: an interface named %s exists and is not kite's",
				  n->name, n->bridge);
	if (check_against_others(d, n) < 0)
		return -1;
	return network_save(d, n);
}

/* ---- runtime ---- */

static pid_t read_pid(const char *path)
{
	char *data;
	size_t len;
	if (read_file_all(path, 64, &data, &len) < 0)
		return 0;
	long pid = strtol(data, NULL, 10);
	free(data);
	return pid > 1 ? (pid_t)pid : 0;
}

/* The dnsmasq of this network, if it still runs: its pid, checked against /proc so that a
 * recycled pid is never signalled. */
static pid_t dnsmasq_pid(const struct mgmt_dirs *d, const struct network_config *n)
{
	char path[PATH_MAX], proc[64], *comm;
	size_t len;
	if (run_path(d, n->name, "dnsmasq.pid", path, sizeof(path)) < 0)
		return 0;
	pid_t pid = read_pid(path);
	if (!pid)
		return 0;
	snprintf(proc, sizeof(proc), "/proc/%d/comm", (int)pid);
	if (read_file_all(proc, 64, &comm, &len) < 0)
		return 0;
	bool ours = !strcmp(comm, "dnsmasq\n");
	free(comm);
	return ours ? pid : 0;
}

/* Alive, and not a zombie that nobody reaps (dnsmasq's parent is init, which in a container
 * may not be one that reaps). */
static bool process_running(pid_t pid)
{
	char path[64], *stat;
	size_t len;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (read_file_all(path, 4096, &stat, &len) < 0)
		return false;
	const char *close_paren = strrchr(stat, ')');
	bool running = close_paren && close_paren[1] == ' ' && close_paren[2] != 'Z';
	free(stat);
	return running;
}

bool network_is_active(const struct mgmt_dirs *d, const struct network_config *n)
{
	char path[PATH_MAX];
	struct stat st;
	if (run_path(d, n->name, "active", path, sizeof(path)) < 0 || stat(path, &st) < 0)
		return false;
	if (!host_if_exists(n->bridge))
		return false;
	pid_t pid = n->dhcp ? dnsmasq_pid(d, n) : 0;
	return !n->dhcp || (pid && process_running(pid));
}

static int start_dnsmasq(const struct mgmt_dirs *d, const struct network_config *n)
{
	char pidfile[PATH_MAX], leases[PATH_MAX], log[PATH_MAX], ip[16], start[16], end[16],
	    mask[16];
	if (run_path(d, n->name, "dnsmasq.pid", pidfile, sizeof(pidfile)) < 0 ||
	    run_path(d, n->name, "leases", leases, sizeof(leases)) < 0 ||
	    run_path(d, n->name, "dnsmasq.log", log, sizeof(log)) < 0)
		return -1;
	network_addr_text(n->addr, ip);
	network_addr_text(n->dhcp_start, start);
	network_addr_text(n->dhcp_end, end);
	network_addr_text(htonl(0xffffffffu << (32 - n->prefix)), mask);
	char a_pid[PATH_MAX + 16], a_lease[PATH_MAX + 24], a_log[PATH_MAX + 24], a_if[40],
	    a_listen[40], a_range[80];
	snprintf(a_log, sizeof(a_log), "--log-facility=%s", log);
	snprintf(a_pid, sizeof(a_pid), "--pid-file=%s", pidfile);
	snprintf(a_lease, sizeof(a_lease), "--dhcp-leasefile=%s", leases);
	snprintf(a_if, sizeof(a_if), "--interface=%s", n->bridge);
	snprintf(a_listen, sizeof(a_listen), "--listen-address=%s", ip);
	snprintf(a_range, sizeof(a_range), "--dhcp-range=%s,%s,%s,12h", start, end, mask);
	/* On this bridge only, addresses handed out in order from
	 * the start as VirtualBox does; it runs as root so that it can write the lease file in
	 * kite's runtime directory; it logs to RUN/networks/NAME/dnsmasq.log. */
	char *argv[] = {"dnsmasq", "--conf-file=/dev/null",
			/* DHCP only (no DNS) on host-only networks; DNS too on nat ones */
			n->mode == NETWORK_NAT ? "--domain-needed" : "--port=0",
			"--bind-interfaces", "--except-interface=lo", a_if, a_listen, a_range,
			"--dhcp-authoritative", "--dhcp-no-override", a_pid, a_lease, "--user=root",
			"--group=root", "--dhcp-sequential-ip", "--no-ping", a_log, NULL};
	pid_t pid = fork();
	if (pid < 0)
		return kite_error_errno(errno, "fork for dnsmasq");
	if (pid == 0) {
		/* Its output goes to its log, not to our stdout/stderr: the daemon outlives this
		 * command and would hold a caller's pipes open. */
		int null = open("/dev/null", O_RDWR);
		int logfd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (null >= 0) {
			dup2(null, STDIN_FILENO);
			dup2(null, STDOUT_FILENO);
		}
		if (logfd >= 0)
			dup2(logfd, STDERR_FILENO);
		execvp("dnsmasq", argv);
		fprintf(stderr, "kite: error: cannot run dnsmasq (Debian's dnsmasq-base): %s\n",
			strerror(errno));
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	/* dnsmasq forks into the background once it is ready; its first process exits 0. */
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return kite_error("network %s: dnsmasq did not start (exit status %d; see %s)",
				  n->name, WIFEXITED(status) ? WEXITSTATUS(status) : -1, log);
	return 0;
}

int network_stop(const struct mgmt_dirs *d, const struct network_config *n)
{
	char path[PATH_MAX];
	int r = 0;
	if (run_path(d, n->name, "active", path, sizeof(path)) == 0)
		unlink(path);
	pid_t pid = dnsmasq_pid(d, n);
	if (pid) {
		kill(pid, SIGTERM);
		for (int i = 0; i < 100 && process_running(pid); i++)
			sleep_ms(20);
	}
	if (n->mode == NETWORK_NAT)
		network_nat_stop(n);
	if (n->mode != NETWORK_BRIDGE && host_bridge_del(n->bridge) < 0)
		r = -1;
	static const char *const files[] = {"dnsmasq.pid", "leases", "dnsmasq.log", "nft.conf"};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (run_path(d, n->name, files[i], path, sizeof(path)) == 0)
			unlink(path);
	if (run_path(d, n->name, "", path, sizeof(path)) == 0)
		rmdir(path);
	return r;
}

int network_start(const struct mgmt_dirs *d, const struct network_config *n)
{
	char dir[PATH_MAX], active[PATH_MAX];
	struct stat st;
	if (run_path(d, n->name, "", dir, sizeof(dir)) < 0 ||
	    run_path(d, n->name, "active", active, sizeof(active)) < 0)
		return -1;
	/* The runtime directory is made before anything else, so that it marks what an
	 * earlier start left behind (a kite killed half-way): remove that first. */
	if (stat(dir, &st) == 0 && network_stop(d, n) < 0)
		return -1;
	if (n->mode == NETWORK_BRIDGE) {
		if (!host_if_is_bridge(n->bridge))
			return kite_error("network %s: %s is not a bridge on this host", n->name,
					  n->bridge);
	} else if (host_if_exists(n->bridge)) {
		return kite_error("network %s: an interface named %s exists and is not kite's",
				  n->name, n->bridge);
	}
	if (mkdir_parents(dir, 0755) < 0)
		return -1;
	if (n->mode != NETWORK_BRIDGE &&
	    (host_bridge_add(n->bridge) < 0 ||
	     (n->addr ? host_if_set_addr_up(n->bridge, n->addr, n->prefix)
		      : host_if_up(n->bridge)) < 0 ||
	     (n->dhcp && start_dnsmasq(d, n) < 0))) {
		network_stop(d, n);
		return -1;
	}
	char nft[PATH_MAX];
	if (n->mode == NETWORK_NAT && (run_path(d, n->name, "nft.conf", nft, sizeof(nft)) < 0 ||
				       network_nat_start(n, nft) < 0)) {
		network_stop(d, n);
		return -1;
	}
	if (write_file_atomic(active, "", 0, 0644) < 0) {
		network_stop(d, n);
		return -1;
	}
	return 0;
}

int network_undefine(const struct mgmt_dirs *d, const char *name)
{
	struct network_config n;
	char path[PATH_MAX];
	if (network_load(d, name, &n) < 0)
		return -1;
	if (network_is_active(d, &n))
		return kite_error("network %s is active: kite net-destroy %s first", name, name);
	if (store_path(d, name, ".json", path, sizeof(path)) < 0)
		return -1;
	if (unlink(path) < 0)
		return kite_error_errno(errno, "cannot remove %s", path);
	return fsync_parent_dir(path);
}

int network_leases(const struct mgmt_dirs *d, const struct network_config *n,
		   struct network_lease **out)
{
	char path[PATH_MAX], *data;
	size_t len;
	*out = NULL;
	if (run_path(d, n->name, "leases", path, sizeof(path)) < 0)
		return -1;
	if (read_file_all(path, 1 << 20, &data, &len) < 0)
		return errno == ENOENT ? 0 : kite_error_errno(errno, "cannot read %s", path);
	int count = 0;
	char *save = NULL;
	for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		struct network_lease l = {0};
		/* dnsmasq: EXPIRY MAC IP HOSTNAME CLIENT-ID ("*" for none) */
		if (sscanf(line, "%lld %17s %15s %63s %95s", &l.expiry, l.mac, l.ip, l.hostname,
			   l.client_id) < 3)
			continue;
		struct network_lease *nb = realloc(*out, (size_t)(count + 1) * sizeof(l));
		if (!nb) {
			free(data);
			free(*out);
			*out = NULL;
			return kite_error("out of memory");
		}
		*out = nb;
		nb[count++] = l;
	}
	free(data);
	return count;
}

int network_resolve_nics(const struct mgmt_dirs *d, struct machine_config *m)
{
	for (int i = 0; i < m->nnics; i++) {
		struct nic_config *nic = &m->nics[i];
		if (nic->kind != NIC_NETWORK || nic->bridge[0])
			continue;
		struct network_config n;
		if (network_load(d, nic->network, &n) < 0)
			return -1;
		if (!network_is_active(d, &n))
			return kite_error("network %s is not active: kite net-start %s", n.name,
					  n.name);
		memcpy(nic->bridge, n.bridge, sizeof(nic->bridge));
	}
	return 0;
}
