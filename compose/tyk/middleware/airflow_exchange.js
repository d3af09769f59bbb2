// The gateway's half of calling into Airflow (docs/plans/inbound.md). Runs after the gateway checked the caller's
// Keycloak token (JWKS, issuer, audience), its policy's allowed paths and its rate: Airflow's API accepts only its own
// tokens, so the caller's is exchanged at Airflow's /auth/token (the jwt-bearer grant of its Keycloak auth manager)
// and the Airflow token replaces it upstream. The Airflow token is kept in the caller's session for as long as the
// Keycloak token it came from is the one presented (every session value must be a string).
var airflowExchange = new TykJS.TykMiddleware.NewMiddleware({});
airflowExchange.NewProcessRequest(function (request, session, spec) {
  var meta = {};
  var had = session.meta_data || {};
  for (var k in had) { meta[k] = String(had[k]); }
  var presented = (request.Headers["Authorization"] || [""])[0].replace(/^Bearer\s+/i, "");
  var signature = presented.split(".")[2];
  if (meta.airflow_for === signature && meta.airflow_token) {
    request.SetHeaders["Authorization"] = "Bearer " + meta.airflow_token;
    return airflowExchange.ReturnData(request, meta);
  }
  var raw = TykMakeHttpRequest(JSON.stringify({
    Method: "POST", Domain: spec.config_data.airflow_url, Resource: "/auth/token",
    Headers: {"Content-Type": "application/json"},
    Body: JSON.stringify({grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer", assertion: presented})}));
  var answer = raw ? JSON.parse(raw) : {Code: 0, Body: "no answer"};
  if (answer.Code !== 201) {
    request.ReturnOverrides.ResponseCode = answer.Code === 403 ? 403 : 502;
    request.ReturnOverrides.ResponseError = "Airflow refused to exchange the caller's token (HTTP " + answer.Code +
      "): " + answer.Body;
    return airflowExchange.ReturnData(request, meta);
  }
  meta.airflow_for = signature;
  meta.airflow_token = JSON.parse(answer.Body).access_token;
  request.SetHeaders["Authorization"] = "Bearer " + meta.airflow_token;
  return airflowExchange.ReturnData(request, meta);
});
