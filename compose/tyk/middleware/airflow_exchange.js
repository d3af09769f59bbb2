// The gateway's half of calling into Airflow (docs/plans/inbound.md). Runs after the gateway checked the caller's
// Keycloak token (JWKS, issuer, audience), its policy's allowed paths and its rate: Airflow's API accepts only its own
// tokens, so the caller's is exchanged at Airflow's /auth/token (the jwt-bearer grant of its Keycloak auth manager)
// and the Airflow token replaces it upstream. The Airflow token is kept in the caller's session for as long as the
// Keycloak token it came from is the one presented (every session value must be a string).
// An asset event is posted by the asset's URI (Airflow's API wants its id): the URI is checked against the assets
// the caller's policy lists (its meta_data `airflow_assets`) and resolved through Airflow's own list, as the caller.
var ASSET_EVENTS = /\/api\/v2\/assets\/events\/?(\?|$)/;  // URL: the path and its query

var airflowExchange = new TykJS.TykMiddleware.NewMiddleware({});

function refuse(request, code, words) {
  request.ReturnOverrides.ResponseCode = code;
  request.ReturnOverrides.ResponseError = words;
  return request;
}

function airflowCall(spec, token, resource) {
  var raw = TykMakeHttpRequest(JSON.stringify({
    Method: "GET", Domain: spec.config_data.airflow_url, Resource: resource,
    Headers: {"Authorization": "Bearer " + token}}));
  return raw ? JSON.parse(raw) : {Code: 0, Body: "no answer"};
}

// The event's body as Airflow wants it (`asset_id`), or the refusal in the caller's terms.
function assetEvent(request, meta, token, spec) {
  var body;
  try { body = JSON.parse(request.Body || "{}"); } catch (e) {
    return refuse(request, 400, "The asset event's body is not JSON: send {\"asset_uri\": \"s3://…\"}.");
  }
  var allowed = JSON.parse(meta.airflow_assets || "[]");
  var uri = body.asset_uri, id = body.asset_id, answer;
  if (uri === undefined && id === undefined) {
    return refuse(request, 400, "The asset event names no asset: send {\"asset_uri\": \"" + (allowed[0] || "…") +
      "\"}.");
  }
  if (uri === undefined) {  // by id, as Airflow's API takes it: which asset that is, for the check below
    answer = airflowCall(spec, token, "/api/v2/assets/" + encodeURIComponent(String(id)));
    if (answer.Code !== 200) { return refuse(request, answer.Code === 404 ? 404 : 502, "Airflow has no asset " + id +
      " (HTTP " + answer.Code + ")."); }
    uri = JSON.parse(answer.Body).uri;
  }
  if (allowed.indexOf(uri) < 0) {
    return refuse(request, 403, "This caller may post events of " + (allowed.join(", ") || "no asset") + ", not " +
      uri + ": its grant's `assets` in the spec say which.");
  }
  if (id === undefined) {
    answer = airflowCall(spec, token, "/api/v2/assets?limit=100&uri_pattern=" + encodeURIComponent(uri));
    if (answer.Code !== 200) { return refuse(request, answer.Code === 403 ? 403 : 502,
      "Airflow did not list its assets to this caller (HTTP " + answer.Code + "): " + answer.Body); }
    var found = JSON.parse(answer.Body).assets.filter(function (a) { return a.uri === uri; });
    if (!found.length) { return refuse(request, 404, "Airflow has no asset " + uri +
      ": a DAG must name it (its schedule or a task's outlets) before events of it can be posted."); }
    id = found[0].id;
  }
  delete body.asset_uri;
  body.asset_id = id;
  request.Body = JSON.stringify(body);
  return request;
}

airflowExchange.NewProcessRequest(function (request, session, spec) {
  var meta = {};
  var had = session.meta_data || {};
  for (var k in had) { meta[k] = String(had[k]); }
  var presented = (request.Headers["Authorization"] || [""])[0].replace(/^Bearer\s+/i, "");
  var signature = presented.split(".")[2];
  if (meta.airflow_for !== signature || !meta.airflow_token) {
    var raw = TykMakeHttpRequest(JSON.stringify({
      Method: "POST", Domain: spec.config_data.airflow_url, Resource: "/auth/token",
      Headers: {"Content-Type": "application/json"},
      Body: JSON.stringify({grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer", assertion: presented})}));
    var answer = raw ? JSON.parse(raw) : {Code: 0, Body: "no answer"};
    if (answer.Code !== 201) {
      refuse(request, answer.Code === 403 ? 403 : 502, "Airflow refused to exchange the caller's token (HTTP " +
        answer.Code + "): " + answer.Body);
      return airflowExchange.ReturnData(request, meta);
    }
    meta.airflow_for = signature;
    meta.airflow_token = JSON.parse(answer.Body).access_token;
  }
  request.SetHeaders["Authorization"] = "Bearer " + meta.airflow_token;
  if (request.Method === "POST" && ASSET_EVENTS.test(request.URL)) {
    assetEvent(request, meta, meta.airflow_token, spec);
  }
  return airflowExchange.ReturnData(request, meta);
});
