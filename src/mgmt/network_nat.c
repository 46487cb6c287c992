/* A nat network's way out: IPv4 forwarding on, and one nftables table per network (Debian's
 * nft, atomic per script) that masquerades what leaves its subnet. The table is named after the
 * network's UUID, so that removing it never touches another network's or the host's rules. */
#include "mgmt/network.h"
#include "mgmt/fileutil.h"
#include "util/err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void table_name(const struct network_config *n, char out[48])
{
	size_t k = snprintf(out, 48, "kite_");
	for (const char *c = n->uuid; *c && k < 47; c++)
		if (*c != '-')
			out[k++] = *c;
	out[k] = '\0';
}

/* Runs nft with `args`; its messages go to stderr only when `report`. 0 or -1. */
static int run_nft(char *const argv[], bool report)
{
	pid_t pid = fork();
	if (pid < 0)
		return kite_error_errno(errno, "fork for nft");
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		if (null >= 0) {
			dup2(null, STDIN_FILENO);
			dup2(null, STDOUT_FILENO);
			if (!report)
				dup2(null, STDERR_FILENO);
		}
		execvp("nft", argv);
		if (report)
			fprintf(stderr, "kite: error: cannot run nft (Debian's nftables): %s\n",
				strerror(errno));
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

int network_nat_start(const struct network_config *n, const char *script)
{
	char table[48], net[16], text[1024];
	table_name(n, table);
	uint32_t mask = htonl(0xffffffffu << (32 - n->prefix));
	network_addr_text(n->addr & mask, net);
	/* Adding the table empty and deleting it first makes the script idempotent: a table a
	 * killed start left is replaced, in the same transaction. */
	int len = snprintf(text, sizeof(text),
			   "table ip %s {}\n"
			   "delete table ip %s\n"
			   "table ip %s {\n"
			   "  chain postrouting {\n"
			   "    type nat hook postrouting priority srcnat; policy accept;\n"
			   "    ip saddr %s/%d ip daddr != %s/%d masquerade\n"
			   "  }\n"
			   "}\n",
			   table, table, table, net, n->prefix, net, n->prefix);
	if (len < 0 || (size_t)len >= sizeof(text))
		return kite_error("network %s: nft script too long", n->name);
	if (write_file_atomic(script, text, (size_t)len, 0644) < 0)
		return -1;
	int fd = open("/proc/sys/net/ipv4/ip_forward", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "1\n", 2) != 2) {
		int err = errno;
		if (fd >= 0)
			close(fd);
		return kite_error_errno(err, "network %s: cannot turn on IPv4 forwarding", n->name);
	}
	close(fd);
	char *argv[] = {"nft", "-f", (char *)script, NULL};
	if (run_nft(argv, true) < 0)
		return kite_error("network %s: nft refused the masquerade rules in %s", n->name,
				  script);
	return 0;
}

void network_nat_stop(const struct network_config *n)
{
	char table[48];
	table_name(n, table);
	char *argv[] = {"nft", "delete", "table", "ip", table, NULL};
	run_nft(argv, false); /* gone already is fine */
}
