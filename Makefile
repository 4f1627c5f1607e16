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
	src/pending.o \
	src/revocation.o \
	src/fetch.o \
	src/worker.o \
	src/jwksworker.o \
	src/loginsnap.o \
	src/login.o \
	src/jwt.o

# the install script of the current version, built from src/sql/*.sql (in
# name order); the install script of 0.1 and the upgrade scripts stay as they
# were released, for CREATE EXTENSION jwt VERSION '0.1' and ALTER EXTENSION
# jwt UPDATE
DATA_built = jwt--$(EXTVERSION).sql
DATA = jwt--0.1.sql jwt--0.1--0.2.sql jwt--0.2--0.3.sql jwt--0.3--0.4.sql jwt--0.4--0.5.sql

# pg_regress suites, in order: fixtures first, the others use its keys
REGRESS = init fixtures sign verify claims errors rfc_vectors rfc8725 keystore issuers session postgrest rls refresh keycache providers
REGRESS_OPTS = --load-extension=$(EXTENSION)

# server headers as system headers: -Wextra then judges only our code
PG_CPPFLAGS = -I$(srcdir)/src -isystem $(shell $(PG_CONFIG) --includedir-server)
PG_CFLAGS = -Wall -Wextra
SHLIB_LINK = -lcrypto -lcurl


PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# after the include: PGXS's "all" must stay the default goal
SQL_SOURCES = $(sort $(wildcard $(srcdir)/src/sql/*.sql))
jwt--$(EXTVERSION).sql: $(SQL_SOURCES)
	cat $(SQL_SOURCES) > $@.tmp
	mv $@.tmp $@

# PGXS tracks no header dependencies: rebuild everything when a header
# changes, or objects built against an older struct layout get linked in
$(OBJS): $(wildcard $(srcdir)/src/*.h)

# standalone tests of the server-independent layers
.PHONY: unitcheck unitcheck-asan
unitcheck:
	$(MAKE) -C test/unit check
unitcheck-asan:
	$(MAKE) -C test/unit check-asan

# a PGXN distribution: HEAD as git archives it, plus the built install
# script, under the top directory jwt-<version>/ (the version of META.json)
DISTVERSION = $(shell sed -n 's/^   "version": "\([^"]*\)",$$/\1/p' $(srcdir)/META.json)
DISTNAME = $(EXTENSION)-$(DISTVERSION)
.PHONY: dist
dist: jwt--$(EXTVERSION).sql
	@git -C $(srcdir) diff --quiet HEAD -- || \
		echo "warning: changes not committed are not in $(DISTNAME).zip" >&2
	rm -f $(DISTNAME).zip
	git -C $(srcdir) archive --format=zip --prefix=$(DISTNAME)/ \
		--add-file=$(CURDIR)/jwt--$(EXTVERSION).sql -o $(CURDIR)/$(DISTNAME).zip HEAD
	@echo $(DISTNAME).zip
