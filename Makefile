# jwt: JSON Web Tokens for PostgreSQL (PGXS)

PG_CONFIG ?= pg_config

EXTENSION = jwt
EXTVERSION = 0.5

MODULE_big = jwt
OBJS = \
	src/base64url.o \
	src/jws.o \
	src/roca.o \
	src/jsonutil.o \
	src/keys.o \
	src/keycache.o \
	src/jwk.o \
	src/keystore.o \
	src/token.o \
	src/verifycache.o \
	src/session.o \
	src/revocation.o \
	src/jwt.o

DATA = jwt--0.1.sql jwt--0.1--0.2.sql jwt--0.2--0.3.sql jwt--0.3--0.4.sql jwt--0.4--0.5.sql

# pg_regress suites, in order: fixtures first, the others use its keys
REGRESS = init fixtures sign verify claims errors rfc_vectors rfc8725 keystore session postgrest rls refresh keycache
REGRESS_OPTS = --load-extension=$(EXTENSION)

# server headers as system headers: -Wextra then judges only our code
PG_CPPFLAGS = -I$(srcdir)/src -isystem $(shell $(PG_CONFIG) --includedir-server)
PG_CFLAGS = -Wall -Wextra
SHLIB_LINK = -lcrypto


PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS tracks no header dependencies: rebuild everything when a header
# changes, or objects built against an older struct layout get linked in
$(OBJS): $(wildcard $(srcdir)/src/*.h)

# standalone tests of the server-independent layers
.PHONY: unitcheck unitcheck-asan
unitcheck:
	$(MAKE) -C test/unit check
unitcheck-asan:
	$(MAKE) -C test/unit check-asan
