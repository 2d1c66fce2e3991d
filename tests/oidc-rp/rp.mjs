// A relying party built on openid-client (a certified OpenID Connect RP library), for the
// end-to-end tests of the sign-in server's OpenID Provider and CIBA (tests/tests/oidc_rp.rs).
// Everything that matters is done by the library: discovery, PKCE, state and nonce, the code
// exchange, ID-token validation against the JWKS (signature, iss, aud, exp, nonce), userinfo,
// refresh, revocation and introspection, and the CIBA request and polling
// (authorization_pending, slow_down).
//
//   OIDC_CLIENT_SECRET=… node rp.mjs web ISSUER CLIENT_ID PORT
//     Serves http://127.0.0.1:PORT: /login starts a code flow with PKCE (S256) (with
//     `?offline=1` the scope adds offline_access), /callback finishes it and shows {"claims",
//     "userinfo", "scope", "refresh_token" (whether one came)} as JSON in <pre id="result"> (or
//     the error in <pre id="error">). Prints "listening" once ready. With the last sign-in's
//     tokens, /refresh introspects the access token, refreshes (rotation), presents the spent
//     refresh token again and then the new one, and introspects the new access token; /revoke
//     revokes the refresh token, then introspects the access token and tries the refresh token
//     and userinfo. Each shows what happened as JSON the same way. An error the provider sent
//     back (such as access_denied) is what the library reports in <pre id="error">. /logout
//     sends the browser to the provider's end_session_endpoint with the URL the library builds
//     (id_token_hint of the last sign-in, post_logout_redirect_uri
//     http://127.0.0.1:PORT/logged-out, state); /logged-out checks the state and shows
//     {"state_ok": true} in <pre id="logged-out">.
//   OIDC_CLIENT_SECRET=… node rp.mjs ciba ISSUER CLIENT_ID LOGIN_HINT [poll|ping PING_PORT] [EXPIRY]
//     Starts a CIBA request, prints "binding_message NN" (what a consumption device shows),
//     then waits for the result (polling, or for the ping on http://127.0.0.1:PING_PORT/ping)
//     and prints one line: "result {claims, userinfo}" or "error CODE".
//
// Secrets are never printed. Exits non-zero only on a usage or library failure that is not an
// OAuth error.
import * as http from 'node:http';
import * as client from 'openid-client';

const [mode, issuer, clientId, ...rest] = process.argv.slice(2);
// The secret comes from the environment, not the command line (which other users can see).
const clientSecret = process.env.OIDC_CLIENT_SECRET;
if (!mode || !issuer || !clientId || !clientSecret) {
  console.error('usage: OIDC_CLIENT_SECRET=… node rp.mjs web|ciba ISSUER CLIENT_ID ...');
  process.exit(2);
}

// http on loopback only (the test server); the library refuses plain http otherwise.
const config = await client.discovery(new URL(issuer), clientId, clientSecret, undefined, {
  execute: [client.allowInsecureRequests],
});

function errorCode(e) {
  // OAuth errors from the server (ResponseBodyError, AuthorizationResponseError) carry `error`;
  // a refused bearer token (WWWAuthenticateChallengeError) carries it in its challenge.
  return e?.error ?? e?.cause?.error ?? e?.cause?.[0]?.parameters?.error ?? e?.code ??
    e?.name ?? 'unknown';
}

async function profile(tokens) {
  const claims = tokens.claims();
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  return { claims, userinfo };
}

function page(res, status, id, value) {
  const text = JSON.stringify(value).replace(/&/g, '&amp;').replace(/</g, '&lt;');
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><title>RP</title><pre id="${id}">${text}</pre>`);
}

// What the server answered to a call that may fail: 'ok', or the OAuth error code.
async function outcome(call) {
  try {
    await call();
    return 'ok';
  } catch (e) {
    return errorCode(e);
  }
}

async function web(port) {
  const redirectUri = `http://127.0.0.1:${port}/callback`;
  const postLogoutRedirectUri = `http://127.0.0.1:${port}/logged-out`;
  // One pending login per state (the browser's session, kept in memory for the test).
  const pending = new Map();
  // The tokens of the last sign-in (for /refresh and /revoke).
  let latest;
  // The last sign-in's ID token (the hint of the next sign-out) and the sign-out's state.
  let lastIdToken;
  let logoutState;
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, `http://127.0.0.1:${port}`);
    try {
      if (url.pathname === '/login') {
        const codeVerifier = client.randomPKCECodeVerifier();
        const state = client.randomState();
        const nonce = client.randomNonce();
        pending.set(state, { codeVerifier, nonce });
        const parameters = {
          redirect_uri: redirectUri,
          scope: url.searchParams.get('offline') ? 'openid profile offline_access' : 'openid profile',
          code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
          code_challenge_method: 'S256',
          state,
          nonce,
        };
        for (const name of ['prompt', 'login_hint', 'max_age']) {
          const v = url.searchParams.get(name);
          if (v) parameters[name] = v;
        }
        const to = client.buildAuthorizationUrl(config, parameters);
        res.writeHead(302, { location: to.href });
        res.end();
        return;
      }
      if (url.pathname === '/callback') {
        const state = url.searchParams.get('state');
        const login = pending.get(state);
        if (!login) {
          page(res, 400, 'error', { error: 'unknown_state' });
          return;
        }
        pending.delete(state);
        const tokens = await client.authorizationCodeGrant(config, url, {
          pkceCodeVerifier: login.codeVerifier,
          expectedState: state,
          expectedNonce: login.nonce,
          idTokenExpected: true,
        });
        latest = tokens;
        lastIdToken = tokens.id_token;
        page(res, 200, 'result', {
          ...(await profile(tokens)),
          scope: tokens.scope,
          refresh_token: typeof tokens.refresh_token === 'string',
        });
        return;
      }
      if (url.pathname === '/refresh') {
        const first = latest;
        const sub = first.claims().sub;
        // A resource server's view of the access token.
        const introspected = await client.tokenIntrospection(config, first.access_token);
        const second = await client.refreshTokenGrant(config, first.refresh_token);
        const refreshed = {
          rotated: typeof second.refresh_token === 'string' &&
            second.refresh_token !== first.refresh_token,
          scope: second.scope,
          claims: second.claims(),
          userinfo: await client.fetchUserInfo(config, second.access_token, sub),
        };
        // The spent refresh token again: refused, and the family ends with it.
        const reuse = await outcome(() => client.refreshTokenGrant(config, first.refresh_token));
        const afterReuse = await outcome(() => client.refreshTokenGrant(config, second.refresh_token));
        const newAccess = await client.tokenIntrospection(config, second.access_token);
        page(res, 200, 'result', {
          introspected, refreshed, reuse, after_reuse: afterReuse, new_access: newAccess,
        });
        return;
      }
      if (url.pathname === '/revoke') {
        const sub = latest.claims().sub;
        const before = await client.tokenIntrospection(config, latest.access_token);
        await client.tokenRevocation(config, latest.refresh_token, { token_type_hint: 'refresh_token' });
        // Unknown tokens are not an error (RFC 7009 §2.2).
        const unknown = await outcome(() => client.tokenRevocation(config, 'not-a-token'));
        const after = await client.tokenIntrospection(config, latest.access_token);
        const refresh = await outcome(() => client.refreshTokenGrant(config, latest.refresh_token));
        const userinfo = await outcome(() => client.fetchUserInfo(config, latest.access_token, sub));
        page(res, 200, 'result', { before, unknown, after, refresh, userinfo });
        return;
      }
      if (url.pathname === '/logout') {
        logoutState = client.randomState();
        const to = client.buildEndSessionUrl(config, {
          id_token_hint: lastIdToken,
          post_logout_redirect_uri: postLogoutRedirectUri,
          state: logoutState,
        });
        lastIdToken = undefined;
        res.writeHead(302, { location: to.href });
        res.end();
        return;
      }
      if (url.pathname === '/logged-out') {
        const ok = logoutState !== undefined && url.searchParams.get('state') === logoutState;
        logoutState = undefined;
        page(res, ok ? 200 : 400, ok ? 'logged-out' : 'error', ok ? { state_ok: true } : { error: 'wrong_state' });
        return;
      }
      res.writeHead(404);
      res.end();
    } catch (e) {
      page(res, 400, 'error', { error: errorCode(e), message: String(e?.message ?? e) });
    }
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  console.log('listening');
}

async function ciba(loginHint, delivery, pingPort, expiry) {
  let pinged;
  const gotPing = new Promise((resolve) => {
    pinged = resolve;
  });
  let pingToken;
  let pingServer;
  if (delivery === 'ping') {
    pingToken = client.randomState();
    pingServer = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        const ok = req.method === 'POST' && req.url === '/ping' &&
          req.headers.authorization === `Bearer ${pingToken}`;
        res.writeHead(ok ? 204 : 401);
        res.end();
        if (ok) pinged(JSON.parse(body));
      });
    });
    // Listening keeps the process alive until the ping (closed in `finally` below).
    await new Promise((resolve) => pingServer.listen(Number(pingPort), '127.0.0.1', resolve));
  }
  const parameters = { scope: 'openid profile', login_hint: loginHint };
  if (expiry) parameters.requested_expiry = expiry;
  if (pingToken) parameters.client_notification_token = pingToken;
  let started;
  try {
    started = await client.initiateBackchannelAuthentication(config, parameters);
  } catch (e) {
    console.log(`error ${errorCode(e)}`);
    pingServer?.close();
    return;
  }
  console.log(`binding_message ${started.binding_message}`);
  // Poll past the request's own expiry, so that the server's expired_token is what ends it.
  const signal = AbortSignal.timeout((started.expires_in + 30) * 1000);
  try {
    let tokens;
    if (delivery === 'ping') {
      const note = await gotPing;
      if (note.auth_req_id !== started.auth_req_id) throw new Error('ping for another request');
      console.log('pinged');
      // One token request after the ping (no wait).
      tokens = await client.pollBackchannelAuthenticationGrant(
        config, { ...started, interval: 0 }, undefined, { signal });
    } else {
      tokens = await client.pollBackchannelAuthenticationGrant(config, started, undefined, { signal });
    }
    console.log(`result ${JSON.stringify(await profile(tokens))}`);
  } catch (e) {
    console.log(`error ${errorCode(e)}`);
  } finally {
    pingServer?.close();
  }
}

if (mode === 'web') {
  await web(Number(rest[0]));
} else if (mode === 'ciba') {
  const [loginHint, delivery = 'poll', ...more] = rest;
  const pingPort = delivery === 'ping' ? more.shift() : undefined;
  // No process.exit(): it could cut off the last line, still buffered for the pipe.
  await ciba(loginHint, delivery, pingPort, more[0]);
} else {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}
