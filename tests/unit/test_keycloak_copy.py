"""The script that makes a copy of Keycloak's template database a sandbox's own (run for real by every local `up`)."""

import base64
import json
import re

from cryptography import x509
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from sandbox.systems.keycloak.database_copy import ARGON2, _cause, _lit, own_copy_sql


def _values(sql: str, name: str) -> list[str]:
    return re.findall(rf"UPDATE COMPONENT_CONFIG SET VALUE = '([^']*)' WHERE COMPONENT_ID = .*? AND NAME = '{name}';",
                      sql)


def test_the_admin_credential_is_argon2_of_the_sandbox_password_as_keycloak_stores_it():
    sql = own_copy_sql("s3cret-pw")
    (secret,) = re.findall(r"UPDATE CREDENTIAL SET SECRET_DATA = '([^']*)' WHERE TYPE = 'password'", sql)
    data = json.loads(secret)
    extra = ARGON2["additionalParameters"]
    Argon2id(salt=base64.b64decode(data["salt"]), length=int(extra["hashLength"][0]),
             iterations=ARGON2["hashIterations"], lanes=int(extra["parallelism"][0]),
             memory_cost=int(extra["memory"][0])).verify(b"s3cret-pw", base64.b64decode(data["value"]))
    assert "USERNAME = 'admin'" in sql and "WHERE NAME = 'master'" in sql


def test_every_master_key_is_new_each_time_and_each_change_is_checked_first():
    one, two = own_copy_sql("pw"), own_copy_sql("pw")
    for name in ("privateKey", "certificate", "secret", "kid"):
        assert len(_values(one, name)) == 2 and not set(_values(one, name)) & set(_values(two, name)), name
    cert = x509.load_der_x509_certificate(base64.b64decode(_values(one, "certificate")[0]))
    assert cert.subject.rfc4514_string() == "CN=master"
    lines = one.splitlines()  # a statement that would change nothing stops the script (a division by zero) instead
    assert all(lines[i - 1].startswith("SELECT 1 / (SELECT COUNT(*)") for i, line in enumerate(lines)
               if line.startswith("UPDATE"))


def test_a_quote_in_a_value_cannot_end_its_literal():
    assert _lit("it's") == "'it''s'"
    assert own_copy_sql("it's").count("UPDATE") == 9  # the password, four keys' two values each


def test_a_failure_names_h2s_complaint_without_the_statement_and_its_secrets():
    out = ('Exception in thread "main" org.h2.jdbc.JdbcSQLDataException: Value too long for column "VALUE"; '
           "SQL statement:\nUPDATE COMPONENT_CONFIG SET VALUE = 'MIIEvQIBADANBgkqhkiG9w0B' WHERE … [22001-240]\n"
           "\tat org.h2.message.DbException.getJdbcSQLException(DbException.java:514)\n")
    assert _cause(out) == 'Value too long for column "VALUE".'
