/* Policy parsing and validation: every bad input gets the exact message at
 * the exact position; valid policies compile to the expected kernel rules. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <linux/netfilter.h>
#include <cmocka.h>

#include "policy.h"
#include "render.h"

/* Parses text and returns everything diags_print wrote (caller frees). */
static char *errors_of(const char *text, int *rc)
{
	struct diags d = { 0 };
	struct policy *p = NULL;
	*rc = policy_parse("p.json", text, strlen(text), &p, &d);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	diags_print(&d, f);
	fclose(f);
	diags_free(&d);
	policy_free(p);
	return buf;
}

struct bad_case {
	const char *json;
	const char *errors;
};

static const struct bad_case bad_cases[] = {
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[{\"proto\":\"tcp\",\"dport\":0,\"action\":\"accept\"}]}}}",
	  "p.json:1:83: error: chains.input.rules[0].dport: port 0 out of range 1-65535\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[{\"proto\":\"tcp\",\"dport\":[],\"action\":\"accept\"}]}}}",
	  "p.json:1:83: error: chains.input.rules[0].dport: empty port list\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[{\"proto\":\"tcp\",\"dport\":\"http\",\"action\":\"accept\"}]}}}",
	  "p.json:1:83: error: chains.input.rules[0].dport: bad port \"http\": expected a port 1-65535 or a range like \"1024-2048\"\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[{\"proto\":\"tcp\",\"dport\":true,\"action\":\"accept\"}]}}}",
	  "p.json:1:83: error: chains.input.rules[0].dport: expected a port number or \"LO-HI\" range, got true\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[{\"proto\":\"tcp\",\"sport\":\"70000\",\"action\":\"accept\"}]}}}",
	  "p.json:1:83: error: chains.input.rules[0].sport: bad port \"70000\": expected a port 1-65535 or a range like \"1024-2048\"\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[{\"dport\":22,\"action\":\"accept\"}]}}}",
	  "p.json:1:69: error: chains.input.rules[0].dport: ports need \"proto\": \"tcp\" or \"udp\" (or both)\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[{\"proto\":\"icmp\",\"dport\":22,\"action\":\"accept\"}]}}}",
	  "p.json:1:69: error: chains.input.rules[0].proto: ports need proto tcp or udp, not \"icmp\"\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[{\"proto\":\"sctp\",\"action\":\"accept\"}]}}}",
	  "p.json:1:69: error: chains.input.rules[0].proto: unknown protocol \"sctp\" (expected tcp, udp, icmp, icmpv6 or any)\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[{\"proto\":[\"tcp\",\"tcp\"],\"action\":\"accept\"}]}}}",
	  "p.json:1:76: error: chains.input.rules[0].proto[1]: protocol \"tcp\" listed twice\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[{\"proto\":[\"tcp\",\"any\"],\"action\":\"accept\"}]}}}",
	  "p.json:1:76: error: chains.input.rules[0].proto[1]: \"any\" cannot be part of a protocol list\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[{\"proto\":5,\"action\":\"accept\"}]}}}",
	  "p.json:1:69: error: chains.input.rules[0].proto: expected a protocol name, got an integer\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[{\"saddr\":\"10.0.0.0/33\",\"action\":\"accept\"}]}}}",
	  "p.json:1:69: error: chains.input.rules[0].saddr: bad address \"10.0.0.0/33\": prefix length 33 out of range 0-32\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[{\"saddr\":\"10.0.0.1/\",\"action\":\"accept\"}]}}}",
	  "p.json:1:69: error: chains.input.rules[0].saddr: bad address \"10.0.0.1/\": bad prefix length\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[{\"saddr\":\"300.1.1.1\",\"action\":\"accept\"}]}}}",
	  "p.json:1:69: error: chains.input.rules[0].saddr: bad address \"300.1.1.1\": not an IPv4 or IPv6 address\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[{\"saddr\":\"2001:db8::1/32\",\"action\":\"accept\"}]}}}",
	  "p.json:1:69: error: chains.input.rules[0].saddr: bad address \"2001:db8::1/32\": host bits set (did you mean 2001:db8::/32?)\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[{\"saddr\":[],\"action\":\"accept\"}]}}}",
	  "p.json:1:69: error: chains.input.rules[0].saddr: empty address list\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[{\"daddr\":\"\",\"action\":\"accept\"}]}}}",
	  "p.json:1:69: error: chains.input.rules[0].daddr: bad address \"\": empty address\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[{\"saddr\":\"10.0.0.0/8\",\"daddr\":\"2001:db8::/32\",\"action\":\"accept\"}]}}}",
	  "p.json:1:60: error: chains.input.rules[0]: rule can never match: its addresses, protocol and family name no common address family\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[{\"proto\":\"icmpv6\",\"saddr\":\"10.0.0.0/8\",\"action\":\"accept\"}]}}}",
	  "p.json:1:60: error: chains.input.rules[0]: rule can never match: its addresses, protocol and family name no common address family\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[{\"proto\":\"tcp\",\"icmp_type\":\"echo-request\",\"action\":\"accept\"}]}}}",
	  "p.json:1:87: error: chains.input.rules[0].icmp_type: icmp_type needs \"proto\": \"icmp\" or \"icmpv6\"\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[{\"proto\":\"icmp\",\"icmp_type\":\"nd-neighbor-solicit\",\"action\":\"accept\"}]}}}",
	  "p.json:1:88: error: chains.input.rules[0].icmp_type: unknown icmp type \"nd-neighbor-solicit\" (expected 0-255 or one of: echo-reply, destination-unreachable, source-quench, redirect, echo-request, router-advertisement, router-solicitation, time-exceeded, parameter-problem, timestamp-request, timestamp-reply, info-request, info-reply, address-mask-request, address-mask-reply)\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[{\"proto\":\"icmpv6\",\"icmp_type\":300,\"action\":\"accept\"}]}}}",
	  "p.json:1:90: error: chains.input.rules[0].icmp_type: unknown icmpv6 type 300 (expected 0-255 or one of: destination-unreachable, packet-too-big, time-exceeded, parameter-problem, echo-request, echo-reply, mld-listener-query, mld-listener-report, mld-listener-done, nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect, router-renumbering, ind-neighbor-solicit, ind-neighbor-advert, mld2-listener-report)\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[{\"iif\":\"\",\"action\":\"accept\"}]}}}",
	  "p.json:1:67: error: chains.input.rules[0].iif: bad interface name \"\": 1-15 printable characters, no '/' or quotes, '*' only at the end\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[{\"iif\":\"eth*0\",\"action\":\"accept\"}]}}}",
	  "p.json:1:67: error: chains.input.rules[0].iif: bad interface name \"eth*0\": 1-15 printable characters, no '/' or quotes, '*' only at the end\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[{\"oif\":\"eth0\",\"action\":\"accept\"}]}}}",
	  "p.json:1:67: error: chains.input.rules[0].oif: the input chain has no output interface; use \"iif\"\n" },
	{ "{\"version\":1,\"chains\":{\"output\":{\"policy\":\"accept\",\"rules\":[{\"iif\":\"eth0\",\"action\":\"accept\"}]}}}",
	  "p.json:1:68: error: chains.output.rules[0].iif: the output chain has no input interface; use \"oif\"\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[{\"ct_state\":\"bogus\",\"action\":\"accept\"}]}}}",
	  "p.json:1:72: error: chains.input.rules[0].ct_state: unknown conntrack state \"bogus\" (expected new, established, related, invalid or untracked)\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[{\"ct_state\":[],\"action\":\"accept\"}]}}}",
	  "p.json:1:72: error: chains.input.rules[0].ct_state: empty conntrack state list\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[{\"family\":\"ipv5\",\"action\":\"accept\"}]}}}",
	  "p.json:1:70: error: chains.input.rules[0].family: unknown family \"ipv5\" (expected ipv4 or ipv6)\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[{\"proto\":\"tcp\",\"rate_limit\":{\"rate\":\"100/fortnight\"},\"action\":\"accept\"}]}}}",
	  "p.json:1:96: error: chains.input.rules[0].rate_limit.rate: bad rate \"100/fortnight\": expected N/second, N/minute, N/hour or N/day with N from 1 to 4294967295\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[{\"proto\":\"tcp\",\"rate_limit\":{\"rate\":\"0/minute\"},\"action\":\"accept\"}]}}}",
	  "p.json:1:96: error: chains.input.rules[0].rate_limit.rate: bad rate \"0/minute\": expected N/second, N/minute, N/hour or N/day with N from 1 to 4294967295\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[{\"proto\":\"tcp\",\"rate_limit\":{\"burst\":5},\"action\":\"accept\"}]}}}",
	  "p.json:1:88: error: chains.input.rules[0].rate_limit: missing key \"rate\"\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[{\"proto\":\"tcp\",\"rate_limit\":{\"rate\":\"5/second\",\"burst\":0},\"action\":\"accept\"}]}}}",
	  "p.json:1:115: error: chains.input.rules[0].rate_limit.burst: burst 0 out of range 1-1000000\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[{\"proto\":\"tcp\",\"rate_limit\":{\"rate\":\"5/second\",\"per\":\"host\"},\"action\":\"accept\"}]}}}",
	  "p.json:1:113: error: chains.input.rules[0].rate_limit.per: unknown value \"host\" (expected source or rule)\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[{\"log\":\"yes\",\"action\":\"drop\"}]}}}",
	  "p.json:1:67: error: chains.input.rules[0].log: expected true, false or an object with \"prefix\", got a string\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[{\"log\":{\"prefix\":\"bad \\\"quote\"},\"action\":\"drop\"}]}}}",
	  "p.json:1:77: error: chains.input.rules[0].log.prefix: \"bad \"quote\" may hold only printable ASCII without '\"' or '\\'\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[{\"counter\":1,\"action\":\"drop\"}]}}}",
	  "p.json:1:71: error: chains.input.rules[0].counter: expected true or false, got an integer\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[{\"comment\":\"x\"}]}}}",
	  "p.json:1:60: error: chains.input.rules[0]: rule does nothing: give it an \"action\", \"log\" or \"counter\"\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":[\"accept\"]}}}",
	  "p.json:1:60: error: chains.input.rules[0]: expected an object, got a string\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",\"rules\":{}}}}",
	  "p.json:1:59: error: chains.input.rules: expected an array of rules, got an object\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"reject\"}}}",
	  "p.json:1:42: error: chains.input.policy: unknown chain policy \"reject\" (expected accept or drop)\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"rules\":[]}}}",
	  "p.json:1:32: error: chains.input: missing key \"policy\" (accept or drop)\n" },
	{ "{\"version\":1,\"chains\":{\"prerouting\":{\"policy\":\"accept\"}}}",
	  "p.json:1:24: error: chains.prerouting: unknown chain \"prerouting\" (expected input, forward or output)\n" },
	{ "{\"version\":1,\"chains\":[]}",
	  "p.json:1:23: error: chains: expected an object with input, forward and output, got an array\n" },
	{ "{\"chains\":{}}",
	  "p.json:1:1: error: missing key \"version\" (must be 1)\n" },
	{ "{\"version\":\"1\",\"chains\":{}}",
	  "p.json:1:12: error: version: unsupported version \"1\" (this agent reads version 1)\n" },
	{ "[]",
	  "p.json:1:1: error: expected an object at the top level, got an array\n" },
	{ "{\"version\":1,\"chains\":{},\"safelist\":[\"0.0.0.0/0\"]}",
	  "p.json:1:38: error: safelist[0]: a safelist of every address would disable all blocking\n" },
	{ "{\"version\":1,\"chains\":{},\"blocklist\":{\"entries\":[\"0.0.0.0/0\"]}}",
	  "p.json:1:50: error: blocklist.entries[0]: refusing to block every address (\"0.0.0.0/0\")\n" },
	{ "{\"version\":1,\"chains\":{},\"blocklist\":{\"entries\":\"1.2.3.4\"}}",
	  "p.json:1:49: error: blocklist.entries: expected an array of addresses, got a string\n" },
	{ "{\"version\":1,\"chains\":{},\"blocklist\":{\"entries\":[\"1.2.3.4/24\"],\"lists\":[]}}",
	  "p.json:1:50: error: blocklist.entries[0]: bad address \"1.2.3.4/24\": host bits set (did you mean 1.2.3.0/24?)\np.json:1:64: error: blocklist.lists: unknown key \"lists\" (expected one of: entries, files)\n" },
	{ "{\"version\":1,\"chains\":{},\"blocklist\":{\"files\":[\"/nonexistent/*.netset\"]}}",
	  "p.json:1:48: error: blocklist.files[0]: no list file matches \"/nonexistent/*.netset\"\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\"}},\"log_dropped\":{\"prefix\":\"X\"}}",
	  "p.json:1:67: error: log_dropped: chain input has policy accept: it drops nothing to log (remove it from \"chains\")\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"drop\",\"rules\":[{\"proto\":\"tcp\",\"dport\":22,\"action\":\"accept\"}]}},\"log_dropped\":{\"chains\":[\"input\",\"nat\"]}}",
	  "p.json:1:139: error: log_dropped.chains[1]: unknown chain \"nat\" (expected input, forward or output)\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"drop\",\"rules\":[{\"proto\":\"tcp\",\"dport\":[22],\"action\":\"drop\"},{\"proto\":\"tcp\",\"dport\":22,\"action\":\"accept\"}]}}}",
	  "p.json:1:58: error: chains.input.rules[0]: this rule drops new SSH connections (tcp port 22) from every address before any rule accepts them: it would lock remote administrators out of the node; accept tcp dport 22 earlier or set \"allow_ssh_lockout\": true\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"drop\",\"rules\":[{\"proto\":\"tcp\",\"dport\":22,\"ct_state\":\"established\",\"action\":\"accept\"}]}}}",
	  "p.json:1:32: error: chains.input: no rule accepts new SSH connections (tcp port 22) and the policy is drop: this would lock remote administrators out of the node; add {\"proto\": \"tcp\", \"dport\": 22, \"action\": \"accept\"} or set \"allow_ssh_lockout\": true\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"drop\",\"rules\":[{\"proto\":\"tcp\",\"dport\":22,\"iif\":\"lo\",\"action\":\"accept\"}]}}}",
	  "p.json:1:32: error: chains.input: no rule accepts new SSH connections (tcp port 22) and the policy is drop: this would lock remote administrators out of the node; add {\"proto\": \"tcp\", \"dport\": 22, \"action\": \"accept\"} or set \"allow_ssh_lockout\": true\n" },
	{ "{\"version\":1,\"chains\":{},\"allow_ssh_lockout\":\"yes\"}",
	  "p.json:1:46: error: allow_ssh_lockout: expected true or false, got a string\n" },
	{ "{\"version\":1,\"chains\":{},\"lockdown\":{\"allow_from\":[\"10.0.0.0/33\"]}}",
	  "p.json:1:52: error: lockdown.allow_from[0]: bad address \"10.0.0.0/33\": prefix length 33 out of range 0-32\n" },
	{ "{\"version\":1,\"chains\":{},\"lockdown\":{\"allow_from\":[\"10.1.2.3/8\",\"fd00:20::1/48\"]}}",
	  "p.json:1:52: error: lockdown.allow_from[0]: bad address \"10.1.2.3/8\": host bits set (did you mean 10.0.0.0/8?)\n"
	  "p.json:1:65: error: lockdown.allow_from[1]: bad address \"fd00:20::1/48\": host bits set (did you mean fd00:20::/48?)\n" },
	{ "{\"version\":1,\"chains\":{},\"lockdown\":{\"allow_from\":\"10.1.2.3/8\"}}",
	  "p.json:1:51: error: lockdown.allow_from: bad address \"10.1.2.3/8\": host bits set (did you mean 10.0.0.0/8?)\n" },
	{ "{\"version\":1,\"chains\":{},\"lockdown\":{\"allow_from\":5}}",
	  "p.json:1:51: error: lockdown.allow_from: expected an address or CIDR string, got an integer\n" },
	{ "{\"version\":1,\"chains\":{},\"lockdown\":{\"allow_from\":[\"::/0\"]}}",
	  "p.json:1:52: error: lockdown.allow_from[0]: an allow_from of every address would leave lockdown without effect\n" },
	{ "{\"version\":1,\"chains\":{},\"lockdown\":{\"rate_limit_factor\":0}}",
	  "p.json:1:58: error: lockdown.rate_limit_factor: rate_limit_factor 0 out of range 1-1000\n" },
	{ "{\"version\":1,\"chains\":{},\"lockdown\":{\"rate_limit_factor\":1001}}",
	  "p.json:1:58: error: lockdown.rate_limit_factor: rate_limit_factor 1001 out of range 1-1000\n" },
	{ "{\"version\":1,\"chains\":{},\"lockdown\":{\"rate_limit_factor\":\"10\"}}",
	  "p.json:1:58: error: lockdown.rate_limit_factor: expected an integer, got a string\n" },
	{ "{\"version\":1,\"chains\":{},\"lockdown\":{\"rate_limit_factor\":2.5}}",
	  "p.json:1:58: error: lockdown.rate_limit_factor: expected an integer, got a number\n" },
	{ "{\"version\":1,\"chains\":{},\"lockdown\":{\"allow\":[]}}",
	  "p.json:1:38: error: lockdown.allow: unknown key \"allow\" (expected one of: allow_from, rate_limit_factor)\n" },
	{ "{\"version\":1,\"chains\":{},\"lockdown\":true}",
	  "p.json:1:37: error: lockdown: expected an object, got a boolean\n" },
	{ "{\"version\":1,\"chains\":{},\"lockdown\":[\"10.0.0.0/8\"]}",
	  "p.json:1:37: error: lockdown: expected an object, got an array\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\"}},\"version\":1}",
	  "p.json:1:61: error: invalid JSON: duplicate object key near '\"version\"'\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\",}}}",
	  "p.json:1:51: error: invalid JSON: string or '}' expected near '}'\n" },
	{ "{\"version\":1,\"chains\":{\"input\":{\"policy\":\"accept\"}}",
	  "p.json:1:51: error: invalid JSON: '}' expected near end of file\n" }
};

static void test_bad_inputs(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		int rc;
		char *got = errors_of(bad_cases[i].json, &rc);
		if (strcmp(got, bad_cases[i].errors) != 0 || rc != -EINVAL)
			print_error("case %zu: %s\n  want: %s  got:  %s", i, bad_cases[i].json,
				    bad_cases[i].errors, got);
		assert_int_equal(rc, -EINVAL);
		assert_string_equal(got, bad_cases[i].errors);
		free(got);
	}
}

/* Positions across lines, and every error reported, not only the first. */
static void test_all_errors_multiline(void **state)
{
	(void)state;
	const char *text = "{\"version\": 1,\n"
			   " \"chains\": {\"input\": {\"policy\": \"accept\", \"rules\": [\n"
			   "  {\"proto\": \"tcp\", \"dport\": 70000, \"action\": \"accept\"},\n"
			   "  {\"proto\": \"udp\", \"saddr\": \"10.1.2.3/8\", \"action\": \"drop\"},\n"
			   "\t{\"proto\": \"tcp\", \"dport\": \"22\", \"action\": \"allow\"}\n"
			   " ]}}}\n";
	int rc;
	char *got = errors_of(text, &rc);
	assert_int_equal(rc, -EINVAL);
	assert_string_equal(got,
			    "p.json:3:29: error: chains.input.rules[0].dport: port 70000 out of range 1-65535\n"
			    "p.json:4:29: error: chains.input.rules[1].saddr: bad address \"10.1.2.3/8\": host bits set (did you mean 10.0.0.0/8?)\n"
			    "p.json:5:44: error: chains.input.rules[2].action: unknown action \"allow\" (expected accept, drop or reject)\n");
	free(got);
}

/* Columns count characters: a multi-byte comment before the error. */
static void test_column_counts_characters(void **state)
{
	(void)state;
	const char *text = "{\"version\": 1, \"x\u00e9\u00e9\": 1, \"chains\": {}}";
	int rc;
	char *got = errors_of(text, &rc);
	assert_string_equal(got, "p.json:1:16: error: x\u00e9\u00e9: unknown key \"x\u00e9\u00e9\" (expected one of: version, allow_ssh_lockout, safelist, blocklist, chains, log_dropped, failsafe, lockdown)\n");
	free(got);
}

static void test_list_file_errors(void **state)
{
	(void)state;
	char dir[] = "/tmp/cvz-test-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[256], text[512];
	snprintf(path, sizeof(path), "%s/a.netset", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("# FireHOL style\r\n203.0.113.7\r\n\n  198.51.100.0/24 # comment\n10.1.2.3/8\nnot-an-ip\n2001:db8:bad::/48\n192.0.2.9 192.0.2.11\n192.0.2.0/24 ; SBL123\n", f);
	fclose(f);
	snprintf(text, sizeof(text),
		 "{\"version\": 1, \"chains\": {}, \"blocklist\": {\"files\": [\"%s/*.netset\"]}}", dir);
	int rc;
	char *got = errors_of(text, &rc);
	char want[1024];
	snprintf(want, sizeof(want),
		 "%s:5: error: bad address \"10.1.2.3/8\": host bits set (did you mean 10.0.0.0/8?)\n"
		 "%s:6: error: bad address \"not-an-ip\": not an IPv4 or IPv6 address\n"
		 "%s:8: error: unexpected \"192.0.2.11\" after \"192.0.2.9\" (one address per line; comments start with # or ;)\n",
		 path, path, path);
	assert_int_equal(rc, -EINVAL);
	assert_string_equal(got, want);
	free(got);

	/* fixed, it loads: three entries from the file, CRLF and comments ignored */
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("# FireHOL style\r\n203.0.113.7\r\n\n  198.51.100.0/24 # comment\n2001:db8:bad::/48\n", f);
	fclose(f);
	struct diags d = { 0 };
	struct policy *p = NULL;
	assert_int_equal(policy_parse("p.json", text, strlen(text), &p, &d), 0);
	assert_int_equal(p->n_blocked, 3);
	assert_int_equal(p->n_list_files, 1);
	assert_string_equal(p->list_files[0], path);
	policy_free(p);
	diags_free(&d);
	unlink(path);
	rmdir(dir);
}

/* 20,000 bad entries and 5,000 rules (each rule records where it came
 * from): positions come from one scan of the text, the first
 * DIAGS_SHOWN_MAX errors are printed where they sit, the rest are counted
 * exactly. The old code re-scanned the text per error and per rule (330 s
 * on the shared test VM) and printed all 20,000 lines; now it takes 0.2 s
 * (2 s under ASan on that loaded VM): the bound of 20 s leaves room for a
 * slow machine and still fails the quadratic scan by far. */
static void test_many_errors_linear(void **state)
{
	(void)state;
	enum { BAD = 20000, RULES = 5000 };
	char *t = malloc((size_t)BAD * 16 + (size_t)RULES * 64 + 256);
	assert_non_null(t);
	size_t off = (size_t)sprintf(t, "{\"version\": 1, \"chains\": {\"input\": {\"policy\": \"accept\", \"rules\": [");
	for (int i = 0; i < RULES; i++)
		off += (size_t)sprintf(t + off, "%s\n{\"proto\": \"tcp\", \"dport\": %d, \"action\": \"accept\"}",
				       i ? "," : "", 1 + i);
	off += (size_t)sprintf(t + off, "]}},\n\"blocklist\": {\"entries\": [");
	for (int i = 0; i < BAD; i++)
		off += (size_t)sprintf(t + off, "%s\n\"bad%d\"", i ? "," : "", i);
	off += (size_t)sprintf(t + off, "]}}\n");
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct diags d = { 0 };
	struct policy *p = NULL;
	assert_int_equal(policy_parse("p.json", t, off, &p, &d), -EINVAL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	print_message("  %d errors, %d rules: %.3f s\n", BAD, RULES, secs);
	assert_true(secs < 20.0);
	assert_int_equal(d.n, 100); /* DIAGS_SHOWN_MAX; the count is in the last line */
	/* entry i sits on line RULES + 3 + i, column 1 */
	for (size_t i = 0; i < d.n; i++) {
		assert_int_equal(d.v[i].line, RULES + 3 + (int)i);
		assert_int_equal(d.v[i].col, 1);
	}
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	diags_print(&d, f);
	fclose(f);
	assert_non_null(strstr(buf, "p.json:5003:1: error: blocklist.entries[0]: bad address \"bad0\""));
	assert_non_null(strstr(buf, "p.json: error: ... and 19900 more errors (20000 in all)\n"));
	assert_null(strstr(buf, "bad100\""));
	free(buf);
	diags_free(&d);
	free(t);
}

/* blocklist.entries and list files together hold at most
 * CVZ_LIST_ENTRIES_MAX (1 000 000) entries: more is one error naming the
 * count and the limit, and nothing beyond the limit is kept meanwhile. The
 * safelist holds at most CVZ_SAFELIST_MAX (10 000). */
static void test_list_limits(void **state)
{
	(void)state;
	char dir[] = "/tmp/cvz-test-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[256], text[512];
	snprintf(path, sizeof(path), "%s/big.netset", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	for (unsigned i = 0; i < 1000001; i++)
		fprintf(f, "45.%u.%u.%u\n", i >> 16, (i >> 8) & 255, i & 255);
	fclose(f);
	snprintf(text, sizeof(text),
		 "{\"version\": 1, \"chains\": {}, \"blocklist\": {\"entries\": [\"46.0.0.1\"], "
		 "\"files\": [\"%s\"]}}", path);
	int rc;
	char *got = errors_of(text, &rc);
	assert_int_equal(rc, -EINVAL);
	assert_string_equal(got, "p.json:1:43: error: blocklist: 1000002 entries (blocklist.entries "
				 "and list files together), more than the limit of 1000000\n");
	free(got);
	/* exactly the limit loads */
	f = fopen(path, "r+");
	assert_non_null(f);
	assert_int_equal(ftruncate(fileno(f), 0), 0);
	for (unsigned i = 0; i < 999999; i++)
		fprintf(f, "45.%u.%u.%u\n", i >> 16, (i >> 8) & 255, i & 255);
	fclose(f);
	struct diags d = { 0 };
	struct policy *p = NULL;
	assert_int_equal(policy_parse("p.json", text, strlen(text), &p, &d), 0);
	assert_int_equal(p->n_blocked, 1000000);
	policy_free(p);
	diags_free(&d);
	unlink(path);
	rmdir(dir);

	size_t cap = 40 + 10001 * 16, off = 0;
	char *t = malloc(cap);
	assert_non_null(t);
	off += (size_t)snprintf(t, cap, "{\"version\": 1, \"chains\": {}, \"safelist\": [");
	for (unsigned i = 0; i < 10001; i++)
		off += (size_t)snprintf(t + off, cap - off, "%s\"10.0.%u.%u\"", i ? "," : "",
					i >> 8, i & 255);
	snprintf(t + off, cap - off, "]}");
	got = errors_of(t, &rc);
	assert_int_equal(rc, -EINVAL);
	assert_string_equal(got, "p.json:1:42: error: safelist: 10001 entries, more than the limit of 10000\n");
	free(got);
	free(t);
}

static struct policy *load_example(const char *name)
{
	char path[256];
	snprintf(path, sizeof(path), "policy/examples/%s", name);
	struct diags d = { 0 };
	struct policy *p = NULL;
	int rc = policy_load(path, &p, &d);
	if (rc != 0)
		diags_print(&d, stderr);
	diags_free(&d);
	assert_int_equal(rc, 0);
	return p;
}

static void test_examples_valid(void **state)
{
	(void)state;
	struct policy *p = load_example("cloudviz-node.json");
	assert_true(p->chains[FW_HOOK_INPUT].policy_drop);
	assert_true(p->chains[FW_HOOK_FORWARD].policy_drop);
	assert_false(p->chains[FW_HOOK_OUTPUT].policy_drop);
	assert_int_equal(p->chains[FW_HOOK_INPUT].n_rules, 7);
	assert_true(p->log_dropped);
	assert_string_equal(p->log_prefix, "DROPPED: ");
	assert_true(p->log_chains[FW_HOOK_INPUT]);
	assert_false(p->log_chains[FW_HOOK_FORWARD]);
	assert_true(p->lockdown.has_allow_from);
	assert_int_equal(p->lockdown.n_allow_from, 2); /* management: 10/8, fd00::/8 */
	assert_int_equal(p->lockdown.rate_limit_factor, 10);
	assert_true(policy_lockdown_usable(p, NULL, 0));
	policy_free(p);
	p = load_example("egress-restricted.json");
	assert_true(p->chains[FW_HOOK_OUTPUT].policy_drop);
	policy_free(p);
}

/* The node policy compiles to the kernel rules the table asks for. */
static void test_compile_node(void **state)
{
	(void)state;
	struct policy *p = load_example("cloudviz-node.json");
	struct fw_table t;
	assert_int_equal(policy_compile(p, &t), 0);
	policy_free(p);
	/* the lists' pair, then the runtime blocks' pair, declared empty */
	assert_int_equal(t.n_sets, 4);
	assert_string_equal(t.sets[0].name, "blocklist_v4");
	assert_string_equal(t.sets[1].name, "blocklist_v6");
	assert_string_equal(t.sets[2].name, "dynamic_v4");
	assert_int_equal(t.sets[2].family, NFPROTO_IPV4);
	assert_int_equal(t.sets[2].kind, FW_SET_ADDR);
	assert_string_equal(t.sets[3].name, "dynamic_v6");
	assert_int_equal(t.sets[3].family, NFPROTO_IPV6);
	assert_int_equal(t.sets[2].elems.n4 + t.sets[3].elems.n6, 0);
	const struct fw_chain *in = &t.chains[FW_HOOK_INPUT];
	/* failsafe + 4 blocklist + lo + ct + 22/80/443 + 8000 v4 + 8000 v6 + db +
	   icmp + icmpv6 + log */
	assert_int_equal(in->n_rules, 14);
	assert_string_equal(in->rules[0].comment, "failsafe: ssh from the safelist");
	assert_int_equal(in->rules[0].n_saddr, 3);
	assert_int_equal(in->rules[0].verdict, FW_VERDICT_ACCEPT);
	static const char *const bl[] = { "blocklist_v4", "blocklist_v6", "dynamic_v4", "dynamic_v6" };
	for (size_t i = 0; i < 4; i++) {
		assert_string_equal(in->rules[1 + i].saddr_set, bl[i]);
		assert_int_equal(in->rules[1 + i].family, i % 2 ? NFPROTO_IPV6 : NFPROTO_IPV4);
		assert_true(in->rules[1 + i].counter);
		assert_int_equal(in->rules[1 + i].verdict, FW_VERDICT_DROP);
	}
	in = &(struct fw_chain){ .rules = in->rules + 3, .n_rules = in->n_rules - 3 };
	assert_string_equal(in->rules[2].iifname, "lo");
	assert_int_equal(in->rules[3].ct_state, FW_CT_ESTABLISHED | FW_CT_RELATED);
	assert_int_equal(in->rules[4].n_dport, 3);
	assert_int_equal(in->rules[5].family, NFPROTO_IPV4);
	assert_int_equal(in->rules[5].n_saddr, 3);
	assert_int_equal(in->rules[6].family, NFPROTO_IPV6);
	assert_int_equal(in->rules[6].n_saddr, 1);
	assert_int_equal(in->rules[7].n_saddr, 1);
	assert_int_equal(in->rules[7].n_dport, 2);
	assert_int_equal(in->rules[8].family, NFPROTO_IPV4);
	assert_int_equal(in->rules[8].n_icmp_type, 4);
	assert_int_equal(in->rules[9].family, NFPROTO_IPV6);
	assert_int_equal(in->rules[9].n_icmp_type, 9);
	assert_true(in->rules[10].log);
	assert_true(in->rules[10].has_limit);
	assert_int_equal(in->rules[10].verdict, FW_VERDICT_NONE);
	const struct fw_chain *fw = &t.chains[FW_HOOK_FORWARD];
	assert_int_equal(fw->n_rules, 8);
	assert_string_equal(fw->rules[2].saddr_set, "dynamic_v4");
	assert_string_equal(fw->rules[4].iifname, "docker0");
	assert_string_equal(fw->rules[5].iifname, "br-*");
	assert_string_equal(fw->rules[7].oifname, "br-*");
	const struct fw_chain *out = &t.chains[FW_HOOK_OUTPUT];
	assert_int_equal(out->n_rules, 5); /* failsafe replies, 4 blocklist */
	assert_int_equal(out->rules[0].n_daddr, 3);
	assert_int_equal(out->rules[0].sport[0].lo, 22);
	assert_int_equal(out->rules[0].ct_state, FW_CT_ESTABLISHED);
	for (size_t i = 0; i < 4; i++) {
		assert_string_equal(out->rules[1 + i].daddr_set, bl[i]);
		assert_null(out->rules[1 + i].saddr_set);
	}
	fw_table_free(&t);
}

/* Blocklist minus safelist; per-source limits get one set per family. */
static void test_compile_blocklist_and_rate(void **state)
{
	(void)state;
	const char *text =
		"{\"version\": 1, \"safelist\": [\"10.1.2.3\"],"
		" \"blocklist\": {\"entries\": [\"10.0.0.0/8\", \"10.0.0.0/9\", \"2001:db8::/32\"]},"
		" \"chains\": {\"input\": {\"policy\": \"accept\", \"rules\": ["
		"  {\"proto\": \"tcp\", \"dport\": 8000, \"rate_limit\": {\"rate\": \"100/minute\", \"burst\": 20}, \"action\": \"accept\"}"
		" ]}}}";
	struct diags d = { 0 };
	struct policy *p = NULL;
	assert_int_equal(policy_parse("p.json", text, strlen(text), &p, &d), 0);
	struct fw_table t;
	assert_int_equal(policy_compile(p, &t), 0);
	policy_free(p);
	assert_int_equal(t.n_sets, 6);
	assert_int_equal(t.sets[0].elems.n4, 2);
	assert_int_equal(t.sets[0].elems.v4[0].lo, 0x0a000000);
	assert_int_equal(t.sets[0].elems.v4[0].hi, 0x0a010202);
	assert_int_equal(t.sets[0].elems.v4[1].lo, 0x0a010204);
	assert_int_equal(t.sets[0].elems.v4[1].hi, 0x0affffff);
	assert_int_equal(t.sets[1].elems.n6, 1);
	assert_int_equal(t.sets[2].elems.n4 + t.sets[3].elems.n6, 0); /* dynamic: empty */
	assert_string_equal(t.sets[4].name, "rate_input_0_v4");
	assert_int_equal(t.sets[4].kind, FW_SET_RATELIMIT);
	assert_int_equal(t.sets[4].timeout_ms, 60000);
	assert_string_equal(t.sets[5].name, "rate_input_0_v6");
	const struct fw_chain *in = &t.chains[FW_HOOK_INPUT];
	assert_int_equal(in->n_rules, 7); /* failsafe, 4 blocklist, v4, v6 */
	assert_string_equal(in->rules[5].limit.rate_set, "rate_input_0_v4");
	assert_int_equal(in->rules[5].limit.rate, 100);
	assert_int_equal(in->rules[5].limit.burst, 20);
	assert_int_equal(in->rules[6].family, NFPROTO_IPV6);
	fw_table_free(&t);
	diags_free(&d);
}

/* The daemon's compile: the lists and the runtime blocks as given, each in
 * its own pair of sets, copied. */
static void test_compile_blocked_pairs(void **state)
{
	(void)state;
	const char *text = "{\"version\": 1, \"blocklist\": {\"entries\": [\"10.0.0.0/8\"]},"
			   " \"chains\": {}}";
	struct diags d = { 0 };
	struct policy *p = NULL;
	assert_int_equal(policy_parse("p.json", text, strlen(text), &p, &d), 0);
	struct cvz_rangeset lists = { 0 }, dyn = { 0 };
	assert_int_equal(cvz_rangeset_add4(&lists, 0x0a000000, 0x0affffff), 0);
	assert_int_equal(cvz_rangeset_add4(&dyn, 0x0a000001, 0x0a000001), 0); /* in both: fine */
	assert_int_equal(cvz_rangeset_add4(&dyn, 0xcb007100, 0xcb0071ff), 0);
	assert_int_equal(cvz_rangeset_add6(&dyn, 1, 1), 0);
	struct fw_table t;
	assert_int_equal(policy_compile_blocked(p, &lists, &dyn, &t), 0);
	policy_free(p);
	assert_int_equal(t.n_sets, 4);
	assert_int_equal(t.sets[0].elems.n4, 1);
	assert_int_equal(t.sets[1].elems.n6, 0);
	assert_string_equal(t.sets[2].name, "dynamic_v4");
	assert_int_equal(t.sets[2].elems.n4, 2);
	assert_int_equal(t.sets[2].elems.v4[1].lo, 0xcb007100);
	assert_string_equal(t.sets[3].name, "dynamic_v6");
	assert_int_equal(t.sets[3].elems.n6, 1);
	assert_int_equal(dyn.n4, 2); /* the caller's ranges are left alone */
	cvz_rangeset_free(&lists);
	cvz_rangeset_free(&dyn);
	fw_table_free(&t);
	diags_free(&d);
}

static void test_lockout_allowed(void **state)
{
	(void)state;
	const char *text = "{\"version\": 1, \"allow_ssh_lockout\": true,"
			   " \"chains\": {\"input\": {\"policy\": \"drop\"}}}";
	struct diags d = { 0 };
	struct policy *p = NULL;
	assert_int_equal(policy_parse("p.json", text, strlen(text), &p, &d), 0);
	assert_int_equal(d.n, 0);
	policy_free(p);
	/* ssh accepted only from a management range is not a lockout */
	text = "{\"version\": 1, \"chains\": {\"input\": {\"policy\": \"drop\", \"rules\": ["
	       "{\"proto\": \"tcp\", \"dport\": \"20-30\", \"saddr\": \"192.0.2.0/24\", \"action\": \"accept\"}]}}}";
	assert_int_equal(policy_parse("p.json", text, strlen(text), &p, &d), 0);
	policy_free(p);
	diags_free(&d);
}

/* The failsafe: default ssh from the safelist, explicit rules, or none. */
static void test_failsafe(void **state)
{
	(void)state;
	int rc;
	char *got = errors_of("{\"version\": 1, \"chains\": {}, \"failsafe\": [{\"proto\": \"tcp\", \"dport\": 22, \"action\": \"drop\"}]}", &rc);
	assert_string_equal(got, "p.json:1:43: error: failsafe[0]: failsafe rules only accept\n");
	free(got);
	const char *text = "{\"version\": 1, \"safelist\": [\"192.0.2.0/24\"], \"failsafe\": [],"
			   " \"chains\": {\"input\": {\"policy\": \"drop\", \"rules\": [{\"proto\": \"tcp\", \"dport\": 22, \"action\": \"accept\"}]}}}";
	struct diags d = { 0 };
	struct policy *p = NULL;
	assert_int_equal(policy_parse("p.json", text, strlen(text), &p, &d), 0);
	assert_int_equal(p->failsafe.n_rules, 0); /* [] disables the default */
	policy_free(p);
	/* a failsafe that accepts ssh satisfies the lockout guard */
	text = "{\"version\": 1, \"safelist\": [\"192.0.2.0/24\"], \"chains\": {\"input\": {\"policy\": \"drop\"}}}";
	assert_int_equal(policy_parse("p.json", text, strlen(text), &p, &d), 0);
	assert_int_equal(p->failsafe.n_rules, 1);
	assert_int_equal(p->failsafe.rules[0].dport[0].lo, 22);
	policy_free(p);
	diags_free(&d);
}

/* ---- lockdown ------------------------------------------------------------ */

static struct policy *parse_ok(const char *text)
{
	struct diags d = { 0 };
	struct policy *p = NULL;
	int rc = policy_parse("p.json", text, strlen(text), &p, &d);
	if (rc != 0)
		diags_print(&d, stderr);
	diags_free(&d);
	assert_int_equal(rc, 0);
	return p;
}

/* The table as render prints it (caller frees). */
static char *rendered(const struct fw_table *t)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	assert_int_equal(render_table(t, f, true), 0);
	fclose(f);
	return buf;
}

static char *compile_rendered(const struct policy *p, const struct compile_opts *o)
{
	struct fw_table t;
	assert_int_equal(policy_compile_opts(p, o, &t), 0);
	char *s = rendered(&t);
	fw_table_free(&t);
	return s;
}

/* allow_from reads like the safelist: the same value gives the same
 * message, at the same place. */
static void test_lockdown_parsed_as_safelist(void **state)
{
	(void)state;
	static const char *const values[] = { "[\"10.1.2.3/8\"]", "\"fd00::1/8\"", "[\"x\"]",
					      "[1]", "{}", "[\"10.0.0.0/8\", \"10.0.0.0/33\"]" };
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		char a[256], b[256];
		int rc1, rc2;
		snprintf(a, sizeof(a), "{\"version\":1,\"chains\":{},\"lockdown\":{\"allow_from\":%s}}",
			 values[i]);
		snprintf(b, sizeof(b), "{\"version\":1,\"chains\":{},\"safelist\":%s}", values[i]);
		char *ga = errors_of(a, &rc1), *gb = errors_of(b, &rc2);
		assert_int_equal(rc1, -EINVAL);
		assert_int_equal(rc2, -EINVAL);
		/* p.json:1:COL: error: PATH: message -- the same message after
		   the path, at the same value (shifted by the longer key) */
		const char *ma = strstr(ga, "allow_from"), *mb = strstr(gb, "safelist");
		assert_non_null(ma);
		assert_non_null(mb);
		assert_string_equal(ma + strlen("allow_from"), mb + strlen("safelist"));
		int ca = 0, cb = 0;
		assert_int_equal(sscanf(ga, "p.json:1:%d:", &ca), 1);
		assert_int_equal(sscanf(gb, "p.json:1:%d:", &cb), 1);
		assert_int_equal(ca - cb, (int)strlen("\"lockdown\":{\"allow_from\":") -
					  (int)strlen("\"safelist\":"));
		free(ga);
		free(gb);
	}
}

static void test_lockdown_defaults(void **state)
{
	(void)state;
	char why[512];
	/* no section: the safelist, factor 10 */
	struct policy *p = parse_ok("{\"version\": 1, \"safelist\": [\"10.0.0.0/8\", \"fd00::/8\"], \"chains\": {}}");
	assert_false(p->lockdown.has_allow_from);
	assert_int_equal(p->lockdown.n_allow_from, 2);
	assert_memory_equal(p->lockdown.allow_from, p->safelist, 2 * sizeof(*p->safelist));
	assert_int_equal(p->lockdown.rate_limit_factor, 10);
	assert_null(p->lockdown.where);
	assert_true(policy_lockdown_usable(p, why, sizeof(why)));
	policy_free(p);
	/* a section without allow_from: the safelist too */
	p = parse_ok("{\"version\": 1, \"safelist\": \"192.0.2.0/24\", \"chains\": {},\n"
		     " \"lockdown\": {\"rate_limit_factor\": 1000}}");
	assert_int_equal(p->lockdown.n_allow_from, 1);
	assert_int_equal(p->lockdown.allow_from[0].len, 24);
	assert_int_equal(p->lockdown.rate_limit_factor, 1000);
	assert_string_equal(p->lockdown.where, "p.json:2:14 (lockdown)");
	policy_free(p);
	/* allow_from replaces the safelist; one address is a list of one */
	p = parse_ok("{\"version\": 1, \"safelist\": [\"10.0.0.0/8\"], \"chains\": {},"
		     " \"lockdown\": {\"allow_from\": \"2001:db8:1::/48\", \"rate_limit_factor\": 1}}");
	assert_true(p->lockdown.has_allow_from);
	assert_int_equal(p->lockdown.n_allow_from, 1);
	assert_int_equal(p->lockdown.allow_from[0].family, AF_INET6);
	assert_int_equal(p->lockdown.rate_limit_factor, 1);
	policy_free(p);
}

static void test_lockdown_usable(void **state)
{
	(void)state;
	char why[512] = "";
	struct policy *p = parse_ok("{\"version\": 1, \"chains\": {}}");
	assert_int_equal(p->lockdown.n_allow_from, 0);
	assert_false(policy_lockdown_usable(p, why, sizeof(why)));
	assert_string_equal(why, "the policy has neither lockdown.allow_from nor a safelist: "
				 "lockdown would cut every new inbound connection except loopback "
				 "and the failsafe; add lockdown.allow_from or a safelist");
	assert_false(policy_lockdown_usable(p, NULL, 0));
	policy_free(p);
	/* an explicit empty list is allowed, and not usable: no safelist default */
	p = parse_ok("{\"version\": 1, \"safelist\": [\"10.0.0.0/8\"], \"chains\": {},"
		     " \"lockdown\": {\"allow_from\": []}}");
	assert_true(p->lockdown.has_allow_from);
	assert_int_equal(p->lockdown.n_allow_from, 0);
	assert_false(policy_lockdown_usable(p, why, sizeof(why)));
	assert_string_equal(why, "lockdown.allow_from is empty: lockdown would cut every new "
				 "inbound connection except loopback and the failsafe; list the "
				 "management ranges in lockdown.allow_from");
	policy_free(p);
	p = parse_ok("{\"version\": 1, \"chains\": {}, \"lockdown\": {\"allow_from\": [\"fd00::/8\"]}}");
	assert_true(policy_lockdown_usable(p, why, sizeof(why)));
	policy_free(p);
}

static const char lockdown_policy[] =
	"{\"version\": 1, \"safelist\": [\"192.0.2.0/24\"], \"log_dropped\": true,\n"
	" \"lockdown\": {\"allow_from\": [\"10.20.0.0/16\", \"fd00:20::/48\", \"198.51.100.7\"]},\n"
	" \"failsafe\": [{\"proto\": \"tcp\", \"dport\": 22, \"saddr\": \"192.0.2.0/24\","
	"   \"rate_limit\": {\"rate\": \"30/minute\", \"burst\": 10}}],\n"
	" \"chains\": {\n"
	"  \"input\": {\"policy\": \"drop\", \"rules\": [\n"
	"   {\"proto\": \"tcp\", \"dport\": 22, \"action\": \"accept\"},\n"
	"   {\"proto\": \"tcp\", \"dport\": 8000, \"rate_limit\": {\"rate\": \"100/minute\", \"burst\": 20}, \"action\": \"accept\"},\n"
	"   {\"proto\": \"tcp\", \"dport\": 8001, \"rate_limit\": {\"rate\": \"5/second\", \"per\": \"rule\"}, \"action\": \"accept\"}]},\n"
	"  \"output\": {\"policy\": \"accept\", \"rules\": [\n"
	"   {\"proto\": \"udp\", \"dport\": 53, \"rate_limit\": {\"rate\": \"1000/second\", \"burst\": 3000, \"per\": \"rule\"}, \"action\": \"accept\"}]}}}";

static void assert_limit(const struct fw_rule *r, uint64_t rate, uint64_t unit, uint32_t burst)
{
	assert_true(r->has_limit);
	assert_int_equal(r->limit.rate, rate);
	assert_int_equal(r->limit.unit_secs, unit);
	assert_int_equal(r->limit.burst, burst);
}

/* One lockdown rule: `iifname != "lo" ip(6) saddr != {...} ct state new
 * counter drop comment "lockdown"`. */
static void assert_lockdown_rule(const struct fw_rule *r, uint8_t fam, size_t n_saddr)
{
	assert_string_equal(r->iifname, "lo");
	assert_true(r->iifname_invert);
	assert_int_equal(r->family, fam);
	assert_true(r->saddr_invert);
	assert_null(r->saddr_set);
	assert_int_equal(r->n_saddr, n_saddr);
	for (size_t i = 0; i < n_saddr; i++)
		assert_int_equal(r->saddr[i].family, fam == NFPROTO_IPV4 ? AF_INET : AF_INET6);
	assert_int_equal(r->n_daddr, 0);
	assert_int_equal(r->n_l4proto, 0);
	assert_int_equal(r->ct_state, FW_CT_NEW);
	assert_false(r->has_limit);
	assert_true(r->counter);
	assert_int_equal(r->verdict, FW_VERDICT_DROP);
	assert_string_equal(r->comment, "lockdown");
	assert_string_equal(r->origin, "p.json:2:14 (lockdown)");
}

static void test_compile_lockdown(void **state)
{
	(void)state;
	struct policy *p = parse_ok(lockdown_policy);
	const struct compile_opts on = { .lockdown = true };
	struct fw_table t;
	assert_int_equal(policy_compile_opts(p, &on, &t), 0);
	const struct fw_chain *in = &t.chains[FW_HOOK_INPUT];
	/* failsafe, 4 blocklist, lockdown v4 + v6, 22, 8000 v4 + v6, 8001, log */
	assert_int_equal(in->n_rules, 12);
	assert_limit(&in->rules[0], 30, 60, 10); /* the failsafe keeps its limit */
	for (size_t i = 1; i <= 4; i++)
		assert_non_null(in->rules[i].saddr_set);
	assert_lockdown_rule(&in->rules[5], NFPROTO_IPV4, 3); /* 10.20/16, .7, 127/8 */
	assert_lockdown_rule(&in->rules[6], NFPROTO_IPV6, 2); /* fd00:20::/48, ::1 */
	assert_int_equal(in->rules[5].saddr[2].len, 8);
	assert_int_equal(in->rules[5].saddr[2].addr[0], 127);
	assert_int_equal(in->rules[6].saddr[1].len, 128);
	assert_int_equal(in->rules[6].saddr[1].addr[15], 1);
	assert_false(in->rules[7].has_limit);
	/* per source: 100/minute burst 20 -> 10/minute burst 2, both families */
	assert_limit(&in->rules[8], 10, 60, 2);
	assert_true(in->rules[8].limit.per_source);
	assert_string_equal(in->rules[8].limit.rate_set, "rate_input_1_v4");
	assert_limit(&in->rules[9], 10, 60, 2);
	assert_limit(&in->rules[10], 1, 1, 1); /* 5/second burst 5: max(1, 0) */
	assert_false(in->rules[10].limit.per_source);
	assert_limit(&in->rules[11], 10, 60, 5); /* log_dropped keeps its limit */
	assert_true(in->rules[11].log);
	for (size_t i = 0; i < t.n_sets; i++) /* an idle source is forgotten as before */
		if (t.sets[i].kind == FW_SET_RATELIMIT)
			assert_int_equal(t.sets[i].timeout_ms, 60000);
	/* forward and output: no lockdown rule, but limits tightened */
	assert_int_equal(t.chains[FW_HOOK_FORWARD].n_rules, 4);
	const struct fw_chain *out = &t.chains[FW_HOOK_OUTPUT];
	assert_int_equal(out->n_rules, 6);
	for (size_t i = 0; i < out->n_rules; i++)
		assert_false(out->rules[i].saddr_invert || out->rules[i].iifname_invert);
	assert_limit(&out->rules[5], 100, 1, 300);
	char *text = rendered(&t);
	fw_table_free(&t);
	assert_non_null(strstr(text, "\t\tiifname != \"lo\" ip saddr != { 10.20.0.0/16, 127.0.0.0/8, "
				     "198.51.100.7 } ct state new counter packets 0 bytes 0 drop "
				     "comment \"lockdown\"\n"
				     "\t\tiifname != \"lo\" ip6 saddr != { ::1, fd00:20::/48 } ct state "
				     "new counter packets 0 bytes 0 drop comment \"lockdown\"\n"
				     "\t\ttcp dport 22 accept\n"));
	free(text);

	/* off: as written, no lockdown rule */
	const struct compile_opts off = { .lockdown = false };
	assert_int_equal(policy_compile_opts(p, &off, &t), 0);
	in = &t.chains[FW_HOOK_INPUT];
	assert_int_equal(in->n_rules, 10);
	assert_false(in->rules[5].saddr_invert);
	assert_limit(&in->rules[6], 100, 60, 20);
	assert_limit(&in->rules[8], 5, 1, 5);
	assert_limit(&t.chains[FW_HOOK_OUTPUT].rules[5], 1000, 1, 3000);
	fw_table_free(&t);
	policy_free(p);
}

/* The factor's bounds: 1 changes no limit, 1000 takes most to 1. */
static void test_compile_lockdown_factor(void **state)
{
	(void)state;
	char text[sizeof(lockdown_policy) + 64];
	struct fw_table t;
	const struct compile_opts on = { .lockdown = true };
	static const struct { const char *factor; uint64_t r8000, r53; uint32_t b8000, b53; } cases[] = {
		{ "1", 100, 1000, 20, 3000 },
		{ "3", 33, 333, 6, 1000 },
		{ "1000", 1, 1, 1, 3 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "%s", lockdown_policy);
		char *at = strstr(text, "\"198.51.100.7\"]");
		assert_non_null(at);
		char tail[sizeof(text)];
		snprintf(tail, sizeof(tail), "%s", at + strlen("\"198.51.100.7\"]"));
		snprintf(at, sizeof(text) - (size_t)(at - text),
			 "\"198.51.100.7\"], \"rate_limit_factor\": %s%s", cases[i].factor, tail);
		struct policy *p = parse_ok(text);
		assert_int_equal(policy_compile_opts(p, &on, &t), 0);
		assert_limit(&t.chains[FW_HOOK_INPUT].rules[8], cases[i].r8000, 60, cases[i].b8000);
		assert_limit(&t.chains[FW_HOOK_OUTPUT].rules[5], cases[i].r53, 1, cases[i].b53);
		assert_limit(&t.chains[FW_HOOK_INPUT].rules[0], 30, 60, 10);
		fw_table_free(&t);
		policy_free(p);
	}
}

/* Defaults into the rule: the safelist's v4 ranges, and a v6 rule with
 * loopback alone (one address: a compare, not a set). */
static void test_compile_lockdown_default_sources(void **state)
{
	(void)state;
	struct policy *p = parse_ok("{\"version\": 1, \"safelist\": [\"10.0.0.0/8\"], \"chains\": {}}");
	const struct compile_opts on = { .lockdown = true };
	struct fw_table t;
	assert_int_equal(policy_compile_opts(p, &on, &t), 0);
	const struct fw_chain *in = &t.chains[FW_HOOK_INPUT];
	assert_int_equal(in->n_rules, 7);
	assert_int_equal(in->rules[5].n_saddr, 2);
	assert_int_equal(in->rules[6].n_saddr, 1);
	assert_non_null(strstr(in->rules[5].origin, "p.json (lockdown)"));
	char *text = rendered(&t);
	assert_non_null(strstr(text, "iifname != \"lo\" ip saddr != { 10.0.0.0/8, 127.0.0.0/8 } ct state new"));
	assert_non_null(strstr(text, "iifname != \"lo\" ip6 saddr != ::1 ct state new"));
	free(text);
	fw_table_free(&t);
	policy_free(p);
}

/* Without lockdown every entry point compiles what it did before lockdown
 * existed: the golden files of the examples, byte for byte. */
static void test_compile_unchanged_without_lockdown(void **state)
{
	(void)state;
	static const char *const names[] = { "cloudviz-node", "egress-restricted" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char file[128], path[256];
		snprintf(file, sizeof(file), "%s.json", names[i]);
		snprintf(path, sizeof(path), "tests/integration/golden/%s.nft", names[i]);
		struct policy *p = load_example(file);
		char *want = NULL;
		size_t cap = 0;
		FILE *f = fopen(path, "r");
		assert_non_null(f);
		char head[] = "table inet cloudviz\ndelete table inet cloudviz\n";
		ssize_t n = getdelim(&want, &cap, '\0', f);
		fclose(f);
		assert_true(n > 0);
		char *full = NULL;
		assert_true(asprintf(&full, "%s%s", head, want) > 0);
		struct fw_table t;
		assert_int_equal(policy_compile(p, &t), 0);
		char *a = rendered(&t);
		fw_table_free(&t);
		assert_int_equal(policy_compile_blocked(p, NULL, NULL, &t), 0);
		char *b = rendered(&t);
		fw_table_free(&t);
		char *c = compile_rendered(p, NULL);
		char *d = compile_rendered(p, &(const struct compile_opts){ .lockdown = false });
		assert_string_equal(a, full);
		assert_string_equal(b, full);
		assert_string_equal(c, full);
		assert_string_equal(d, full);
		free(a);
		free(b);
		free(c);
		free(d);
		free(full);
		free(want);
		policy_free(p);
	}
}

static void test_unreadable(void **state)
{
	(void)state;
	struct diags d = { 0 };
	struct policy *p = NULL;
	assert_int_equal(policy_load("/nonexistent/policy.json", &p, &d), -ENOENT);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.v[0].msg, "cannot read policy: No such file or directory");
	diags_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_inputs),
		cmocka_unit_test(test_all_errors_multiline),
		cmocka_unit_test(test_column_counts_characters),
		cmocka_unit_test(test_list_file_errors),
		cmocka_unit_test(test_many_errors_linear),
		cmocka_unit_test(test_list_limits),
		cmocka_unit_test(test_examples_valid),
		cmocka_unit_test(test_compile_node),
		cmocka_unit_test(test_compile_blocklist_and_rate),
		cmocka_unit_test(test_compile_blocked_pairs),
		cmocka_unit_test(test_lockout_allowed),
		cmocka_unit_test(test_failsafe),
		cmocka_unit_test(test_lockdown_parsed_as_safelist),
		cmocka_unit_test(test_lockdown_defaults),
		cmocka_unit_test(test_lockdown_usable),
		cmocka_unit_test(test_compile_lockdown),
		cmocka_unit_test(test_compile_lockdown_factor),
		cmocka_unit_test(test_compile_lockdown_default_sources),
		cmocka_unit_test(test_compile_unchanged_without_lockdown),
		cmocka_unit_test(test_unreadable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
