"""Registry token service, CI OIDC federation and static scoped tokens.

The gate builds one `AuthService` from the `auth` section of its config (`load_auth_settings`) and
calls `AuthService.token_endpoint`, `AuthService.jwks` and `AuthService.authorize`. `regward token`
manages static tokens through `StaticTokenStore`.
"""

from __future__ import annotations

from regward.auth.config import AuthSettings, OidcGrant, OidcTrustPolicy, load_auth_settings
from regward.auth.errors import (
    AuthConfigError,
    AuthenticationError,
    AuthError,
    JwksFetchError,
    OidcVerificationError,
    SigningKeyError,
    TokenStoreError,
)
from regward.auth.service import AuthorizationResult, AuthService, HttpResponse
from regward.auth.static import IssuedStaticToken, StaticToken, StaticTokenStore

__all__ = [
    "AuthConfigError",
    "AuthError",
    "AuthService",
    "AuthSettings",
    "AuthenticationError",
    "AuthorizationResult",
    "HttpResponse",
    "IssuedStaticToken",
    "JwksFetchError",
    "OidcGrant",
    "OidcTrustPolicy",
    "OidcVerificationError",
    "SigningKeyError",
    "StaticToken",
    "StaticTokenStore",
    "TokenStoreError",
    "load_auth_settings",
]
