/*
 * loginbench.c -- logins per second through libpq 18, with a bearer token
 * (OAuth, the jwt validator) or with a password (SCRAM): bench/login's
 * client.  See README.md beside this file.
 *
 *     loginbench [-n LOGINS] [-c CLIENTS] [-t TOKENFILE] [-q SQL [-e WANT]]
 *                [-w WARMUP] [-l LABEL] CONNINFO
 *
 * Forks CLIENTS processes; each makes its share of LOGINS logins one after
 * another, each login a connection of its own: PQconnectdbParams, then SQL
 * when -q is given (its first row, columns joined by "|" and a NULL as \N,
 * must be WANT when -e is given), then PQfinish.  The clients start
 * together (they wait on a pipe the parent closes), and the clock runs
 * from then until the last of them has finished.
 *
 *   -t TOKENFILE  log in with the bearer token in TOKENFILE (trailing CR/LF
 *                 dropped), handed to libpq by PQsetAuthDataHook in answer
 *                 to PQAUTHDATA_OAUTH_BEARER_TOKEN.  CONNINFO should carry
 *                 oauth_issuer=<issuer>/.well-known/openid-configuration
 *                 (libpq then asks for the token before it first writes, and
 *                 logs in with one connection); oauth_client_id=loginbench
 *                 is added when it has none.  Without -t, CONNINFO logs in
 *                 as it says (for SCRAM: user=... password=...).
 *   -w WARMUP     logins each client makes before the clock starts (default
 *                 0): not counted.
 *   -l LABEL      the first field of the result line.
 *
 * Prints one line:
 *
 *   LABEL clients=C logins=N seconds=S logins_per_s=R median_ms=M p95_ms=P
 *         min_ms=A max_ms=B failed=F
 *
 * where the latency of a login is from PQconnectdbParams to the return of
 * PQfinish.  Exit status: 0 every login succeeded; 1 any login (or its
 * query, or its check) failed, and the first failure's message is on
 * stderr; 2 usage, token file or libpq version error.
 *
 * Build: cc -O2 -o loginbench loginbench.c -I$(pg_config --includedir) \
 *            -L$(pg_config --libdir) -lpq
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#define MAX_TOKEN (16 * 1024 * 1024)
#define DEFAULT_CLIENT_ID "loginbench"
#define ERRLEN 1024

/* shared between the clients and the parent (an anonymous shared mapping) */
typedef struct Shared
{
	int			failed;			/* logins that failed, all clients */
	int			have_error;		/* first_error is set */
	char		first_error[ERRLEN];
	double		latency[];		/* ms, one slot per measured login */
} Shared;

static char *token;
static Shared *shared;

static int
token_hook(PGauthData type, PGconn *conn, void *data)
{
	if (type == PQAUTHDATA_OAUTH_BEARER_TOKEN)
	{
		PGoauthBearerRequest *request = data;

		/* ours until exit: libpq copies it, no cleanup callback needed */
		request->token = token;
		return 1;
	}
	return PQdefaultAuthDataHook(type, conn, data);
}

static char *
read_token(const char *path)
{
	FILE	   *f = fopen(path, "rb");
	size_t		cap = 65536,
				len = 0,
				n;
	char	   *buf;

	if (!f)
	{
		fprintf(stderr, "loginbench: cannot open %s: %s\n", path, strerror(errno));
		return NULL;
	}
	buf = malloc(cap + 1);
	while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0)
	{
		len += n;
		if (len == cap)
		{
			char	   *bigger;

			if (cap >= MAX_TOKEN)
			{
				fprintf(stderr, "loginbench: %s is over %d bytes\n", path, MAX_TOKEN);
				free(buf);
				buf = NULL;
				break;
			}
			cap *= 2;
			bigger = realloc(buf, cap + 1);
			if (!bigger)
				free(buf);
			buf = bigger;
		}
	}
	fclose(f);
	if (!buf)
		return NULL;
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	buf[len] = '\0';
	if (len == 0 || strlen(buf) != len)
	{
		fprintf(stderr, "loginbench: %s is empty or holds a NUL byte\n", path);
		free(buf);
		return NULL;
	}
	return buf;
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* the conninfo's keywords, with oauth_client_id added in token mode */
static const char *keys[64];
static const char *vals[64];

static void
parse_conninfo(const char *conninfo, int oauth)
{
	char	   *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
	int			n = 0;
	int			have_client_id = 0;

	if (!opts)
	{
		fprintf(stderr, "loginbench: bad conninfo: %s", err ? err : "out of memory\n");
		exit(2);
	}
	for (PQconninfoOption *o = opts; o->keyword; o++)
	{
		if (!o->val)
			continue;
		if (strcmp(o->keyword, "oauth_client_id") == 0)
			have_client_id = 1;
		if (n < 62)
		{
			keys[n] = strdup(o->keyword);
			vals[n] = strdup(o->val);
			n++;
		}
	}
	if (oauth && !have_client_id)
	{
		keys[n] = "oauth_client_id";
		vals[n] = DEFAULT_CLIENT_ID;
		n++;
	}
	keys[n] = NULL;
	vals[n] = NULL;
	PQconninfoFree(opts);
}

static void
note_failure(const char *what, const char *msg)
{
	__atomic_fetch_add(&shared->failed, 1, __ATOMIC_SEQ_CST);
	if (__atomic_exchange_n(&shared->have_error, 1, __ATOMIC_SEQ_CST) == 0)
		snprintf(shared->first_error, ERRLEN, "%s: %s", what, msg ? msg : "");
}

/* one login; its latency in ms, or -1 when it failed */
static double
one_login(const char *sql, const char *want)
{
	double		t0 = now_ms();
	PGconn	   *conn = PQconnectdbParams(keys, vals, 0);
	int			ok = 1;

	if (PQstatus(conn) != CONNECTION_OK)
	{
		note_failure("connection failed", PQerrorMessage(conn));
		ok = 0;
	}
	else if (sql)
	{
		PGresult   *res = PQexec(conn, sql);

		if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK)
		{
			note_failure("query failed", PQresultErrorMessage(res));
			ok = 0;
		}
		else if (want)
		{
			char		got[ERRLEN] = "";
			size_t		len = 0;

			if (PQntuples(res) > 0)
				for (int c = 0; c < PQnfields(res); c++)
				{
					const char *v = PQgetisnull(res, 0, c) ? "\\N" : PQgetvalue(res, 0, c);

					len += snprintf(got + len, len < sizeof(got) ? sizeof(got) - len : 0,
									"%s%s", c > 0 ? "|" : "", v);
					if (len >= sizeof(got))
						len = sizeof(got) - 1;
				}
			if (strcmp(got, want) != 0)
			{
				char		msg[ERRLEN];

				snprintf(msg, sizeof(msg), "got \"%s\", want \"%s\"\n", got, want);
				note_failure("query returned another row", msg);
				ok = 0;
			}
		}
		PQclear(res);
	}
	PQfinish(conn);
	return ok ? now_ms() - t0 : -1;
}

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

/* the q-quantile of sorted v[0..n-1], nearest rank */
static double
quantile(const double *v, int n, double q)
{
	int			i = (int) (q * n + 0.999999) - 1;

	if (i < 0)
		i = 0;
	if (i >= n)
		i = n - 1;
	return v[i];
}

static void
usage(const char *prog)
{
	fprintf(stderr, "usage: %s [-n LOGINS] [-c CLIENTS] [-t TOKENFILE] [-q SQL [-e WANT]] "
			"[-w WARMUP] [-l LABEL] CONNINFO\n", prog);
	exit(2);
}

int
main(int argc, char **argv)
{
	int			logins = 1000,
				clients = 1,
				warmup = 0;
	const char *tokenfile = NULL,
			   *sql = NULL,
			   *want = NULL,
			   *label = "logins";
	int			opt;
	int			gate[2],
				ready[2];
	pid_t	   *pids;
	double		t0,
				seconds;
	int			measured = 0;
	int			rc = 0;

	while ((opt = getopt(argc, argv, "n:c:t:q:e:w:l:")) != -1)
	{
		switch (opt)
		{
			case 'n':
				logins = atoi(optarg);
				break;
			case 'c':
				clients = atoi(optarg);
				break;
			case 't':
				tokenfile = optarg;
				break;
			case 'q':
				sql = optarg;
				break;
			case 'e':
				want = optarg;
				break;
			case 'w':
				warmup = atoi(optarg);
				break;
			case 'l':
				label = optarg;
				break;
			default:
				usage(argv[0]);
		}
	}
	if (optind != argc - 1 || logins < 1 || clients < 1 || clients > 1024 || warmup < 0 ||
		(want && !sql))
		usage(argv[0]);
	if (PQlibVersion() < 180000)
	{
		fprintf(stderr, "loginbench: libpq %d is older than 18 (no OAuth bearer tokens)\n",
				PQlibVersion());
		return 2;
	}
	if (tokenfile)
	{
		token = read_token(tokenfile);
		if (!token)
			return 2;
		PQsetAuthDataHook(token_hook);
	}
	parse_conninfo(argv[optind], tokenfile != NULL);
	if (clients > logins)
		clients = logins;

	shared = mmap(NULL, sizeof(Shared) + sizeof(double) * logins, PROT_READ | PROT_WRITE,
				  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shared == MAP_FAILED)
	{
		perror("loginbench: mmap");
		return 2;
	}
	for (int i = 0; i < logins; i++)
		shared->latency[i] = -1;
	if (pipe(gate) != 0 || pipe(ready) != 0)
	{
		perror("loginbench: pipe");
		return 2;
	}
	fflush(NULL);
	pids = calloc(clients, sizeof(pid_t));
	for (int c = 0; c < clients; c++)
	{
		/* client c makes logins [first, last) */
		int			first = (int) ((long) logins * c / clients);
		int			last = (int) ((long) logins * (c + 1) / clients);

		pids[c] = fork();
		if (pids[c] < 0)
		{
			perror("loginbench: fork");
			return 2;
		}
		if (pids[c] == 0)
		{
			char		b;

			close(gate[1]);
			close(ready[0]);
			for (int i = 0; i < warmup; i++)
				one_login(sql, want);
			/* ready; the parent closes the gate once every client is */
			b = 'r';
			while (write(ready[1], &b, 1) < 0 && errno == EINTR)
				;
			close(ready[1]);
			while (read(gate[0], &b, 1) < 0 && errno == EINTR)
				;
			for (int i = first; i < last; i++)
				shared->latency[i] = one_login(sql, want);
			_exit(0);
		}
	}
	close(gate[0]);
	close(ready[1]);
	/*
	 * Every client writes a byte once its warm-up is done; EOF comes early
	 * only when a client died before that, which waitpid reports below.
	 */
	for (int got = 0; got < clients;)
	{
		char		buf[64];
		ssize_t		n = read(ready[0], buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (int) n;
	}
	close(ready[0]);
	t0 = now_ms();
	close(gate[1]);
	for (int c = 0; c < clients; c++)
	{
		int			status;

		while (waitpid(pids[c], &status, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			note_failure("a client died", "");
	}
	seconds = (now_ms() - t0) / 1e3;

	{
		double	   *v = malloc(sizeof(double) * logins);

		for (int i = 0; i < logins; i++)
			if (shared->latency[i] >= 0)
				v[measured++] = shared->latency[i];
		qsort(v, measured, sizeof(double), cmp_double);
		printf("%s clients=%d logins=%d seconds=%.3f logins_per_s=%.1f median_ms=%.3f "
			   "p95_ms=%.3f min_ms=%.3f max_ms=%.3f failed=%d\n",
			   label, clients, logins, seconds, logins / seconds,
			   measured ? quantile(v, measured, 0.5) : 0,
			   measured ? quantile(v, measured, 0.95) : 0,
			   measured ? v[0] : 0, measured ? v[measured - 1] : 0, shared->failed);
		free(v);
	}
	if (shared->failed > 0 || measured != logins)
	{
		fprintf(stderr, "loginbench: %d of %d logins failed; the first: %s", logins - measured,
				logins, shared->first_error);
		rc = 1;
	}
	return rc;
}
