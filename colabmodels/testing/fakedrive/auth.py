"""OAuth for the Drive emulator: service-account keys, the token endpoint, bearer tokens.

* ``AuthService.create_service_account`` makes an RSA key with
  ``cryptography`` and returns the standard key-file JSON (whose ``token_uri``
  is the emulator's ``/token``); its public half is remembered.
* ``POST /token`` (``AuthService.token_endpoint``) accepts the JWT-bearer
  grant (``assertion`` is an RS256 JWT signed by a registered key; ``iss``,
  ``aud`` (the emulator's token URI, or Google's, which google-auth always
  uses), ``iat``/``exp`` and ``scope`` are checked) and the ``refresh_token``
  grant, and answers as Google's endpoint does, including its error bodies
  (``{"error": "invalid_grant", "error_description": ...}``).
* ``AuthService.authenticate`` maps an ``Authorization: Bearer`` header to
  a user, or raises a 401 ``ApiError``. Self-signed service-account
  JWTs (what google-auth sends when credentials have no scopes) are accepted
  as bearer tokens too, as Google does.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .errors import auth_error

__all__ = ["JWT_BEARER_GRANT", "AuthService", "ServiceAccount", "TokenError"]

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_CLOCK_SKEW_S = 300
_MAX_ASSERTION_LIFETIME_S = 3600


@dataclass
class ServiceAccount:
    """The public half of a registered service-account key."""

    client_email: str
    client_id: str
    key_id: str
    public_pem: str
    user: str
    token_uri: str


GOOGLE_TOKEN_AUDIENCES = ("https://oauth2.googleapis.com/token", "https://www.googleapis.com/oauth2/v4/token")
"""Assertion audiences accepted besides the emulator's own token URI: google-auth
signs for Google's token endpoint whatever ``token_uri`` the key file names."""


class TokenError(Exception):
    """A token-endpoint failure: HTTP status plus Google's ``error`` / ``error_description``."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.status = status
        self.error = error
        self.description = description

    def body(self) -> dict[str, str]:
        """The JSON body Google's token endpoint sends."""
        return {"error": self.error, "error_description": self.description}


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class AuthService:
    """Keys, access tokens and refresh tokens of one emulator.

    Args:
        token_lifetime_s: lifetime of issued access tokens.
        clock: time source (seconds), for tests.
    """

    def __init__(self, *, token_lifetime_s: float = 3600, clock: Any = time.time) -> None:
        self.token_lifetime_s = token_lifetime_s
        self._clock = clock
        self._lock = threading.Lock()
        self._accounts: dict[str, ServiceAccount] = {}  # by key id
        self._access: dict[str, tuple[str, float]] = {}  # token -> (user, expires at)
        self._refresh: dict[str, tuple[str, str]] = {}  # refresh token -> (client id, user)
        self._clients: dict[str, str] = {}  # client id -> secret
        self._counter = 0

    # ------------------------------------------------------------ accounts

    def create_service_account(
        self, *, user: str, token_uri: str, project_id: str = "fakedrive-project", name: str | None = None
    ) -> dict[str, str]:
        """Generate a key, register it for ``user`` and return the key-file JSON."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")
        public_pem = (
            key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode("ascii")
        )
        with self._lock:
            self._counter += 1
            n = self._counter
        key_id = secrets.token_hex(20)
        client_id = str(100000000000000000000 + int.from_bytes(secrets.token_bytes(8), "big"))
        account_name = name or f"fakedrive-sa-{n}"
        email = f"{account_name}@{project_id}.iam.gserviceaccount.com"
        self.register(
            ServiceAccount(
                client_email=email,
                client_id=client_id,
                key_id=key_id,
                public_pem=public_pem,
                user=user,
                token_uri=token_uri,
            )
        )
        base = token_uri.rsplit("/", 1)[0] + "/"
        return {
            "type": "service_account",
            "project_id": project_id,
            "private_key_id": key_id,
            "private_key": private_pem,
            "client_email": email,
            "client_id": client_id,
            "auth_uri": base + "o/oauth2/auth",
            "token_uri": token_uri,
            "auth_provider_x509_cert_url": base + "oauth2/v1/certs",
            "client_x509_cert_url": base + "robot/v1/metadata/x509/" + email.replace("@", "%40"),
            "universe_domain": "googleapis.com",
        }

    def register(self, account: ServiceAccount) -> None:
        """Trust ``account``'s key."""
        with self._lock:
            self._accounts[account.key_id] = account

    def forget(self, key_id: str) -> None:
        """Stop trusting a key (its tokens stay valid until they expire)."""
        with self._lock:
            self._accounts.pop(key_id, None)

    def _account_for(self, header: dict[str, Any], claims: dict[str, Any]) -> ServiceAccount | None:
        with self._lock:
            kid = header.get("kid")
            if isinstance(kid, str) and kid in self._accounts:
                return self._accounts[kid]
            iss = claims.get("iss")
            for acc in self._accounts.values():
                if acc.client_email == iss:
                    return acc
        return None

    # ----------------------------------------------------------- refresh

    def issue_refresh_token(self, user: str) -> tuple[str, str, str]:
        """A new OAuth client and refresh token for ``user``: ``(client_id, secret, token)``."""
        client_id = f"{secrets.randbelow(10**12):012d}-fakedrive.apps.googleusercontent.com"
        client_secret = "GOCSPX-" + secrets.token_urlsafe(21)
        refresh = "1//fake-" + secrets.token_urlsafe(32)
        with self._lock:
            self._clients[client_id] = client_secret
            self._refresh[refresh] = (client_id, user)
        return client_id, client_secret, refresh

    # ------------------------------------------------------------- tokens

    def _issue_access_token(self, user: str) -> dict[str, Any]:
        token = "ya29.fake-" + secrets.token_urlsafe(32)
        lifetime = self.token_lifetime_s
        with self._lock:
            self._access[token] = (user, self._clock() + lifetime)
        return {"access_token": token, "expires_in": max(1, int(lifetime)), "token_type": "Bearer"}

    def expire_all(self) -> None:
        """Invalidate every issued access token (clients must refresh)."""
        with self._lock:
            self._access.clear()

    def revoke_all(self) -> None:
        """Revoke every sign-in: access tokens, refresh tokens and service-account keys are
        forgotten, so the next refresh gets ``invalid_grant`` (keys made later work)."""
        with self._lock:
            self._access.clear()
            self._refresh.clear()
            self._accounts.clear()

    def token_endpoint(self, form: dict[str, str], *, token_uri: str, users: set[str]) -> dict[str, Any]:
        """Handle ``POST /token``; returns the JSON body or raises ``TokenError``.

        Args:
            form: the decoded form fields.
            token_uri: this emulator's token URI (the required ``aud``).
            users: the known user emails (for ``sub`` delegation).
        """
        grant = form.get("grant_type")
        if grant == JWT_BEARER_GRANT:
            assertion = form.get("assertion")
            if not assertion:
                raise TokenError(400, "invalid_request", "Missing required parameter: assertion")
            account, claims = self._verify_jwt(assertion)
            aud = claims.get("aud")
            # google-auth always signs for Google's token URL whatever token_uri says (Google
            # accepts that); oauth2client signs for token_uri. Both are what real clients send.
            if aud not in (token_uri, account.token_uri, *GOOGLE_TOKEN_AUDIENCES):
                raise TokenError(400, "invalid_grant", f"Invalid JWT: audience {aud!r} is not {token_uri!r}")
            if not claims.get("scope") and not claims.get("target_audience"):
                raise TokenError(400, "invalid_scope", "Invalid OAuth scope or ID token audience provided.")
            user = account.user
            sub = claims.get("sub")
            if sub and sub != account.client_email:
                if str(sub).lower() not in users:
                    raise TokenError(
                        401,
                        "unauthorized_client",
                        "Client is unauthorized to retrieve access tokens using this method, "
                        "or client not authorized for any of the scopes requested.",
                    )
                user = str(sub).lower()
            return self._issue_access_token(user)
        if grant == "refresh_token":
            client_id = form.get("client_id", "")
            with self._lock:
                secret = self._clients.get(client_id)
                entry = self._refresh.get(form.get("refresh_token", ""))
            if secret is None or secret != form.get("client_secret"):
                raise TokenError(401, "invalid_client", "The OAuth client was not found.")
            if entry is None or entry[0] != client_id:
                raise TokenError(400, "invalid_grant", "Token has been expired or revoked.")
            body = self._issue_access_token(entry[1])
            body["scope"] = form.get("scope") or "https://www.googleapis.com/auth/drive"
            return body
        raise TokenError(400, "unsupported_grant_type", f"Invalid grant_type: {grant or ''}")

    def _verify_jwt(self, token: str, *, max_lifetime: bool = True) -> tuple[ServiceAccount, dict[str, Any]]:
        """Check an RS256 JWT's signature and times; return its account and claims."""
        try:
            head_b64, body_b64, sig_b64 = token.split(".")
            header = json.loads(_b64url_decode(head_b64))
            claims = json.loads(_b64url_decode(body_b64))
            signature = _b64url_decode(sig_b64)
        except (ValueError, json.JSONDecodeError) as e:
            raise TokenError(400, "invalid_grant", "Invalid JWT: could not decode") from e
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise TokenError(400, "invalid_grant", "Invalid JWT: could not decode")
        if header.get("alg") != "RS256":
            raise TokenError(400, "invalid_grant", "Invalid JWT Signature.")
        account = self._account_for(header, claims)
        if account is None:
            raise TokenError(400, "invalid_grant", "Invalid grant: account not found")
        public = serialization.load_pem_public_key(account.public_pem.encode("ascii"))
        try:
            public.verify(  # type: ignore[union-attr,call-arg]
                signature,
                f"{head_b64}.{body_b64}".encode("ascii"),
                padding.PKCS1v15(),  # type: ignore[arg-type]
                hashes.SHA256(),  # type: ignore[arg-type]
            )
        except InvalidSignature as e:
            raise TokenError(400, "invalid_grant", "Invalid JWT Signature.") from e
        if claims.get("iss") != account.client_email:
            raise TokenError(400, "invalid_grant", "Invalid JWT: iss does not match the key's account")
        now = self._clock()
        try:
            iat = float(claims["iat"])
            exp = float(claims["exp"])
        except (KeyError, TypeError, ValueError) as e:
            raise TokenError(400, "invalid_grant", "Invalid JWT: missing iat or exp") from e
        bad_time = (
            exp <= now - _CLOCK_SKEW_S
            or iat > now + _CLOCK_SKEW_S
            or exp <= iat
            or (max_lifetime and exp - iat > _MAX_ASSERTION_LIFETIME_S)
        )
        if bad_time:
            raise TokenError(
                400,
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
                "timeframe. Check your iat and exp values in the JWT claim.",
            )
        return account, claims

    def authenticate(self, authorization: str | None, query_token: str | None = None) -> str:
        """The user an ``Authorization`` header (or ``access_token`` parameter) stands for.

        Raises:
            ApiError: 401 ``authError`` for a missing, unknown or expired token.
        """
        token: str | None = None
        if authorization:
            scheme, _, value = authorization.strip().partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise auth_error()
            token = value.strip()
        elif query_token:
            token = query_token
        if not token:
            raise auth_error("Login Required.")
        with self._lock:
            entry = self._access.get(token)
        if entry is not None:
            user, expires_at = entry
            if self._clock() < expires_at:
                return user
            with self._lock:
                self._access.pop(token, None)
            raise auth_error()
        if token.count(".") == 2 and token.startswith("eyJ"):
            try:
                account, claims = self._verify_jwt(token)
            except TokenError:
                raise auth_error()
            if claims.get("sub", account.client_email) != account.client_email:
                raise auth_error()
            return account.user
        raise auth_error()

    # -------------------------------------------------------- persistence

    def to_state(self) -> dict[str, Any]:
        """Registered keys and refresh tokens (access tokens are not persisted)."""
        with self._lock:
            return {
                "accounts": [asdict(a) for a in self._accounts.values()],
                "clients": dict(self._clients),
                "refresh": {k: list(v) for k, v in self._refresh.items()},
                "counter": self._counter,
            }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what ``to_state`` returned."""
        with self._lock:
            for a in state.get("accounts", []):
                acc = ServiceAccount(**a)
                self._accounts[acc.key_id] = acc
            self._clients.update(state.get("clients", {}))
            for k, v in state.get("refresh", {}).items():
                self._refresh[k] = (v[0], v[1])
            self._counter = max(self._counter, int(state.get("counter", 0)))
