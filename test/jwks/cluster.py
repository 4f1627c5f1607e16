"""cluster.py -- the JWKS suite's cluster: initdb'd in a temp dir, unix
socket there, no TCP, jwt.jwks_ca_file = the test CA of test/fixtures/idp.

Used by test/jwks/run.py (and its preloaded primary with a standby) and by
a run of test/jwks/trust.py alone, each on a port of its own.
"""

import os
import shutil
import tempfile

from stresslib import initdb, pg_start, pg_stop
import idpctl

DB = 'jwt_jwks'
CONF = ("jwt.jwks_ca_file = '%s'\njwt.jwks_timeout = 2s\n"
        "log_min_messages = warning\n" % idpctl.CA_FILE)


class Cluster:
    def __init__(self, port, prefix='jwt-jwks.'):
        self.port = port
        self.dir = tempfile.mkdtemp(prefix=prefix)
        if os.geteuid() == 0:
            shutil.chown(self.dir, 'postgres', 'postgres')
        self.data = os.path.join(self.dir, 'data')
        self.log = os.path.join(self.dir, 'server.log')

    def start(self, conf=CONF):
        initdb(self.data, conf)
        pg_start(self.data, self.dir, self.port, self.log)

    def conninfo(self, db=DB):
        return 'host=%s port=%d dbname=%s user=postgres' % (self.dir, self.port, db)

    def log_text(self):
        with open(self.log, errors='replace') as f:
            return f.read()

    def stop(self, keep=False):
        pg_stop(self.data)
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)
