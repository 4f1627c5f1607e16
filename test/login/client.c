/*
 * client.c -- login_client, a libpq client (PostgreSQL 18) that logs in
 * with a bearer token: the test/login suite's client.
 *
 *     login_client CONNINFO TOKENFILE [SQL ...]
 *
 * Reads the token from TOKENFILE ("-": standard input; trailing CR/LF
 * dropped; up to 16 MB, so a 1 MB token is fine), and answers libpq's
 * PQAUTHDATA_OAUTH_BEARER_TOKEN request with it: no OAuth flow, no network
 * call, the token goes to the server as it is.
 *
 * libpq 18 asks for a token only on a connection that has both
 * oauth_issuer and oauth_client_id (otherwise: "server requires OAuth
 * authentication, but oauth_issuer and oauth_client_id are not both set").
 * When CONNINFO has no oauth_client_id, "jwt-login-test" is added.  With
 * oauth_issuer set to the issuer's discovery URI
 * (ISSUER/.well-known/openid-configuration) libpq asks for the token before
 * it first writes to the server, and logs in with one connection; with the
 * bare issuer it first asks the server for its discovery URI (a connection
 * that fails by design) and then connects again with the token.
 *
 * Then runs each SQL in turn and prints each row on a line, the columns
 * joined by "|" (a NULL as \N).  Exit status: 0 success; 1 the connection
 * failed (PQerrorMessage on stderr); 2 usage or token file error; 3 a
 * query failed (its message on stderr).
 *
 * With LOGIN_CLIENT_DEBUG set in the environment, the hook prints what
 * libpq asked for (discovery URI, scope) on stderr; never the token.
 *
 * Build: cc -o login_client client.c -I$(pg_config --includedir) \
 *            -L$(pg_config --libdir) -lpq
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#define MAX_TOKEN (16 * 1024 * 1024)
#define DEFAULT_CLIENT_ID "jwt-login-test"

static char *token;
static int	hook_calls;

static int
token_hook(PGauthData type, PGconn *conn, void *data)
{
	if (type == PQAUTHDATA_OAUTH_BEARER_TOKEN)
	{
		PGoauthBearerRequest *request = data;

		hook_calls++;
		if (getenv("LOGIN_CLIENT_DEBUG"))
			fprintf(stderr, "login_client: token requested (openid_configuration=%s, scope=%s)\n",
					request->openid_configuration ? request->openid_configuration : "(none)",
					request->scope ? request->scope : "(none)");
		/* ours until exit: libpq copies it, and no cleanup callback is needed */
		request->token = token;
		return 1;
	}
	return PQdefaultAuthDataHook(type, conn, data);
}

static char *
read_token(const char *path)
{
	FILE	   *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	size_t		cap = 65536,
				len = 0,
				n;
	char	   *buf;

	if (!f)
	{
		fprintf(stderr, "login_client: cannot open %s: %s\n", path, strerror(errno));
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
				fprintf(stderr, "login_client: %s is over %d bytes\n", path, MAX_TOKEN);
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
	if (f != stdin)
		fclose(f);
	if (!buf)
		return NULL;
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	buf[len] = '\0';
	if (strlen(buf) != len)
	{
		fprintf(stderr, "login_client: %s holds a NUL byte\n", path);
		free(buf);
		return NULL;
	}
	return buf;
}

/* CONNINFO, with oauth_client_id added when it has none */
static PGconn *
connect_with(const char *conninfo)
{
	char	   *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
	const char *keys[64];
	const char *vals[64];
	int			n = 0;
	int			have_client_id = 0;
	PGconn	   *conn;

	if (!opts)
	{
		fprintf(stderr, "login_client: bad conninfo: %s", err ? err : "out of memory\n");
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
			keys[n] = o->keyword;
			vals[n] = o->val;
			n++;
		}
	}
	if (!have_client_id)
	{
		keys[n] = "oauth_client_id";
		vals[n] = DEFAULT_CLIENT_ID;
		n++;
	}
	keys[n] = NULL;
	vals[n] = NULL;
	conn = PQconnectdbParams(keys, vals, 0);
	PQconninfoFree(opts);
	return conn;
}

int
main(int argc, char **argv)
{
	PGconn	   *conn;
	int			rc = 0;

	if (argc < 3)
	{
		fprintf(stderr, "usage: %s CONNINFO TOKENFILE [SQL ...]\n", argv[0]);
		return 2;
	}
	token = read_token(argv[2]);
	if (!token)
		return 2;

	PQsetAuthDataHook(token_hook);
	conn = connect_with(argv[1]);
	if (PQstatus(conn) != CONNECTION_OK)
	{
		fprintf(stderr, "%s", PQerrorMessage(conn));
		if (getenv("LOGIN_CLIENT_DEBUG"))
			fprintf(stderr, "login_client: the hook was called %d time(s)\n", hook_calls);
		PQfinish(conn);
		return 1;
	}

	for (int i = 3; i < argc && rc == 0; i++)
	{
		PGresult   *res = PQexec(conn, argv[i]);
		ExecStatusType st = PQresultStatus(res);

		if (st == PGRES_TUPLES_OK)
		{
			for (int r = 0; r < PQntuples(res); r++)
			{
				for (int c = 0; c < PQnfields(res); c++)
				{
					if (c > 0)
						putchar('|');
					fputs(PQgetisnull(res, r, c) ? "\\N" : PQgetvalue(res, r, c), stdout);
				}
				putchar('\n');
			}
		}
		else if (st != PGRES_COMMAND_OK)
		{
			fprintf(stderr, "%s", PQresultErrorMessage(res));
			rc = 3;
		}
		PQclear(res);
	}
	fflush(stdout);
	PQfinish(conn);
	free(token);
	return rc;
}
