/*
 * test_conns.c - server/conns.c without libmicrohttpd: admission at the cap
 * (shedding the connection waiting longest, refusing when all are busy,
 * waiting while shed ones are still open), every deadline of conns_tick()
 * at explicit clock values, and the drain's idle check. Connections are
 * TCP pairs on 127.0.0.1 (the header deadline reads TCP_INFO); a shutdown
 * is seen at the peer as an end of stream. A connection gone is one
 * libmicrohttpd refused (conns_added(..., false)).
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conns.h"
#include "testutil.h"

/* A connected TCP pair on 127.0.0.1: [0] the server's end, [1] the
   client's. */
static void tcp_pair(int fds[2])
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof a;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(l, 1), 0);
    ck_assert_int_eq(getsockname(l, (struct sockaddr *)&a, &len), 0);
    fds[1] = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_eq(connect(fds[1], (struct sockaddr *)&a, sizeof a), 0);
    fds[0] = accept(l, NULL, NULL);
    ck_assert_int_ge(fds[0], 0);
    close(l);
}

/* Whether the server's end of the pair was shut down (the client reads an
   end of stream at once). */
static bool was_shut(int client)
{
    struct pollfd p = {.fd = client, .events = POLLIN};
    char c;
    return poll(&p, 1, 0) == 1 && recv(client, &c, 1, MSG_DONTWAIT) == 0;
}

static const struct conns_limits limits = {
    .max = 2,
    .header_timeout = 10,
    .body_timeout = 10,
    .body_min_rate = 100,
    .discard_timeout = 30,
    .discard_idle_timeout = 5,
};

static unsigned long long closed(struct conns *cs, enum conns_reason r)
{
    unsigned long long n[CONNS_NREASONS];
    conns_closed(cs, n);
    return n[r];
}

/* At the cap the connection waiting longest is shed, one for one; with
   every connection busy, the new one is refused. */
START_TEST(test_cap)
{
    struct conns *cs = conns_new(&limits, NULL, 0);
    int a[2], b[2], c[2], d[2];
    struct conn *ca, *cb, *cc;
    tcp_pair(a);
    tcp_pair(b);
    tcp_pair(c);
    tcp_pair(d);
    ck_assert_int_eq(conns_admit(cs, a[0], 1.0, &ca), 0);
    ck_assert_int_eq(conns_admit(cs, b[0], 2.0, &cb), 0);
    /* b had a request since: a waits longest */
    conn_begin(cb, 3.0);
    conn_end(cb, 4.0);
    ck_assert_int_eq(conns_admit(cs, c[0], 5.0, &cc), 0);
    ck_assert(was_shut(a[1]));
    ck_assert(!was_shut(b[1]));
    ck_assert_uint_eq(closed(cs, CONNS_SHED), 1);
    conns_added(cs, ca, false); /* libmicrohttpd refused it */
    ck_assert_uint_eq(conns_count(cs), 2);
    /* both busy: refused, nothing shed */
    conn_begin(cb, 6.0);
    conn_begin(cc, 6.0);
    struct conn *cd = (struct conn *)&cd;
    ck_assert_int_eq(conns_admit(cs, d[0], 7.0, &cd), -EBUSY);
    ck_assert_ptr_null(cd);
    ck_assert(!was_shut(b[1]) && !was_shut(c[1]));
    ck_assert_uint_eq(closed(cs, CONNS_REFUSED), 1);
    ck_assert_uint_eq(conns_count(cs), 2);
    conns_free(cs);
    int *all[] = {a, b, c, d};
    for (size_t i = 0; i < 4; i++) {
        close(all[i][0]);
        close(all[i][1]);
    }
}
END_TEST

/* Connections shed but not yet closed by libmicrohttpd count against a
   slack: past it, admission asks to wait (-EAGAIN) instead of shedding
   more; a close makes room again. */
START_TEST(test_shed_slack)
{
    struct conns_limits one = limits;
    one.max = 1;
    struct conns *cs = conns_new(&one, NULL, 0);
    enum { N = 200 };
    int fds[N][2];
    struct conn *cn[N];
    size_t admitted = 0;
    int rc = 0;
    for (size_t i = 0; i < N; i++) {
        tcp_pair(fds[i]);
        rc = conns_admit(cs, fds[i][0], (double)i, &cn[i]);
        if (rc < 0)
            break;
        admitted++;
    }
    ck_assert_int_eq(rc, -EAGAIN);
    ck_assert_uint_gt(admitted, 2);
    ck_assert_uint_lt(admitted, N);
    ck_assert_uint_eq(closed(cs, CONNS_SHED), admitted - 1);
    conns_added(cs, cn[0], false); /* the oldest shed one goes */
    ck_assert_int_eq(conns_admit(cs, fds[admitted][0], 1e3, &cn[admitted]), 0);
    conns_free(cs);
    for (size_t i = 0; i <= admitted; i++) {
        close(fds[i][0]);
        close(fds[i][1]);
    }
}
END_TEST

/* The header deadline runs from a fresh connection's accept once bytes
   came, and from the first bytes seen after a completed request. */
START_TEST(test_header_deadline)
{
    struct conns *cs = conns_new(&limits, NULL, 0);
    int a[2], b[2];
    struct conn *ca, *cb;
    tcp_pair(a);
    tcp_pair(b);
    ck_assert_int_eq(conns_admit(cs, a[0], 100.0, &ca), 0);
    ck_assert_int_eq(conns_admit(cs, b[0], 100.0, &cb), 0);
    /* silent: no deadline (the idle timeout is libmicrohttpd's) */
    conns_tick(cs, 200.0);
    ck_assert(!was_shut(a[1]));
    /* b's request is answered at 200; a sends part of a header block */
    conn_begin(cb, 200.0);
    conn_end(cb, 200.0);
    ck_assert_int_eq(send(a[1], "GET / HT", 8, 0), 8);
    conns_tick(cs, 200.5); /* b: a new wait begins */
    conns_tick(cs, 201.0);
    ck_assert(was_shut(a[1])); /* from the accept at 100 */
    ck_assert_uint_eq(closed(cs, CONNS_HEADER_TIMEOUT), 1);
    /* b's next header block starts arriving at 300 */
    ck_assert_int_eq(send(b[1], "GET / HT", 8, 0), 8);
    conns_tick(cs, 300.0);
    conns_tick(cs, 309.0);
    ck_assert(!was_shut(b[1]));
    conns_tick(cs, 310.5);
    ck_assert(was_shut(b[1]));
    ck_assert_uint_eq(closed(cs, CONNS_HEADER_TIMEOUT), 2);
    conns_free(cs);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
}
END_TEST

/* A body is allowed body_timeout plus a second per body_min_rate bytes;
   a refused one discard_timeout in all and discard_idle_timeout of pause;
   a busy connection has no deadline. */
START_TEST(test_body_deadlines)
{
    struct conns *cs = conns_new(&limits, NULL, 0);
    int a[2], b[2], c[2];
    struct conn *ca, *cb, *cc;
    tcp_pair(a);
    tcp_pair(b);
    tcp_pair(c);
    ck_assert_int_eq(conns_admit(cs, a[0], 0.0, &ca), 0);
    ck_assert_int_eq(conns_admit(cs, b[0], 0.0, &cb), 0);
    /* a: 1000 bytes by 15 s allow 10 + 10 s */
    conn_begin(ca, 0.0);
    conn_body(ca, 1000, 5.0);
    /* b: refused at 1 s, bytes until 20 s */
    conn_begin(cb, 0.0);
    conn_discard(cb, 1.0);
    conn_body(cb, 1 << 20, 20.0);
    conns_tick(cs, 19.5);
    ck_assert(!was_shut(a[1]) && !was_shut(b[1]));
    conns_tick(cs, 20.5);
    ck_assert(was_shut(a[1]));
    ck_assert_uint_eq(closed(cs, CONNS_BODY_TOO_SLOW), 1);
    conns_tick(cs, 24.0); /* paused 4 s of 5 */
    ck_assert(!was_shut(b[1]));
    conns_tick(cs, 25.5);
    ck_assert(was_shut(b[1]));
    ck_assert_uint_eq(closed(cs, CONNS_DISCARD_TIMEOUT), 1);
    /* discarding at full speed still ends at discard_timeout */
    conns_added(cs, ca, false);
    ck_assert_int_eq(conns_admit(cs, c[0], 100.0, &cc), 0);
    conn_begin(cc, 100.0);
    conn_discard(cc, 100.0);
    conn_body(cc, 1 << 20, 130.0);
    conns_tick(cs, 130.0);
    ck_assert(!was_shut(c[1]));
    conn_body(cc, 1 << 20, 131.0);
    conns_tick(cs, 131.0);
    ck_assert(was_shut(c[1]));
    conns_free(cs);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
    close(c[0]);
    close(c[1]);
}
END_TEST

/* A connection closed for its header deadline or body rate reads the
   late answer first; one shed at the cap does not. */
START_TEST(test_late_answer)
{
    static const char late[] = "HTTP/1.1 408 Request Timeout\r\n\r\n";
    struct conns_limits one = limits;
    one.max = 1;
    struct conns *cs = conns_new(&one, late, sizeof late - 1);
    int a[2], b[2];
    struct conn *ca, *cb;
    char buf[128];
    tcp_pair(a);
    tcp_pair(b);
    ck_assert_int_eq(conns_admit(cs, a[0], 0.0, &ca), 0);
    conn_begin(ca, 0.0);
    conns_tick(cs, 30.0); /* 0 bytes of body in 30 s */
    ck_assert_int_eq(recv(a[1], buf, sizeof buf, 0), (ssize_t)sizeof late - 1);
    ck_assert(!memcmp(buf, late, sizeof late - 1));
    ck_assert(was_shut(a[1]));
    conns_added(cs, ca, false);
    ck_assert_int_eq(conns_admit(cs, b[0], 40.0, &cb), 0);
    ck_assert_int_eq(conns_admit(cs, a[0], 41.0, &ca), 0); /* sheds b */
    ck_assert(was_shut(b[1]));
    conns_free(cs);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
}
END_TEST

/*
 * libmicrohttpd's notifications in either order: a descriptor number
 * reused by a newer connection before the older one's CLOSED leaves the
 * newer one counted, and a CLOSED that comes while MHD_add_connection()
 * has not returned leaves the freeing to conns_added() (ASan checks that
 * each record is freed once).
 */
START_TEST(test_notify_order)
{
    struct conns_limits one = limits;
    one.max = 1; /* a stale entry must not count against it */
    struct conns *cs = conns_new(&one, NULL, 0);
    int a[2];
    struct conn *old, *young, *quick;
    tcp_pair(a);
    ck_assert_int_eq(conns_admit(cs, a[0], 1.0, &old), 0);
    conns_added(cs, old, true);
    /* the number comes back from accept() before old's CLOSED */
    ck_assert_int_eq(conns_admit(cs, a[0], 2.0, &young), 0);
    conns_added(cs, young, true);
    ck_assert_uint_eq(conns_count(cs), 1);
    ck_assert_uint_eq(closed(cs, CONNS_SHED), 0);
    void *ctx = old;
    conns_notify(cs, NULL, &ctx, MHD_CONNECTION_NOTIFY_CLOSED);
    ck_assert_ptr_null(ctx);
    ck_assert_uint_eq(conns_count(cs), 1); /* young is still counted */
    ctx = young;
    conns_notify(cs, NULL, &ctx, MHD_CONNECTION_NOTIFY_CLOSED);
    ck_assert_uint_eq(conns_count(cs), 0);
    /* CLOSED inside MHD_add_connection() */
    ck_assert_int_eq(conns_admit(cs, a[0], 3.0, &quick), 0);
    ctx = quick;
    conns_notify(cs, NULL, &ctx, MHD_CONNECTION_NOTIFY_CLOSED);
    ck_assert_uint_eq(conns_count(cs), 0);
    conns_added(cs, quick, true);
    conns_free(cs);
    close(a[0]);
    close(a[1]);
}
END_TEST

/* A connection waiting for its job or answer has no deadline of ours. */
START_TEST(test_busy_exempt)
{
    struct conns *cs = conns_new(&limits, NULL, 0);
    int a[2];
    struct conn *ca;
    tcp_pair(a);
    ck_assert_int_eq(conns_admit(cs, a[0], 0.0, &ca), 0);
    conn_begin(ca, 0.0);
    conn_busy(ca);
    conns_tick(cs, 1e6);
    ck_assert(!was_shut(a[1]));
    conns_free(cs);
    close(a[0]);
    close(a[1]);
}
END_TEST

/* The drain: idle once every connection has waited long enough; then the
   waiting ones are closed, not a busy one. */
START_TEST(test_drain)
{
    struct conns *cs = conns_new(&limits, NULL, 0);
    int a[2], b[2];
    struct conn *ca, *cb;
    tcp_pair(a);
    tcp_pair(b);
    ck_assert(conns_all_idle(cs, 1.0, 0.0)); /* none */
    ck_assert_int_eq(conns_admit(cs, a[0], 10.0, &ca), 0);
    ck_assert_int_eq(conns_admit(cs, b[0], 10.0, &cb), 0);
    ck_assert(!conns_all_idle(cs, 1.0, 10.5));
    ck_assert(conns_all_idle(cs, 1.0, 11.0));
    conn_begin(cb, 11.0);
    ck_assert(!conns_all_idle(cs, 1.0, 20.0));
    conns_close_waiting(cs);
    ck_assert(was_shut(a[1]));
    ck_assert(!was_shut(b[1]));
    ck_assert_uint_eq(closed(cs, CONNS_DRAINED), 1);
    conns_free(cs);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("conns");
    TCase *tc = tcase_create("conns");
    tcase_add_test(tc, test_cap);
    tcase_add_test(tc, test_shed_slack);
    tcase_add_test(tc, test_header_deadline);
    tcase_add_test(tc, test_body_deadlines);
    tcase_add_test(tc, test_late_answer);
    tcase_add_test(tc, test_notify_order);
    tcase_add_test(tc, test_busy_exempt);
    tcase_add_test(tc, test_drain);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run(suite());
}
