// One way the pages call the REST API: same-origin cookies, the CSRF token on writes, JSON in and
// out; a refusal throws an Error with the API's own "detail" (its message) and "code".

export async function apiRequest(url, { method = "GET", csrfToken, payload, keepalive = false } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken;
  if (payload !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, {
    method,
    credentials: "same-origin",
    keepalive,
    headers,
    body: payload === undefined ? undefined : JSON.stringify(payload),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(answer.detail || `${url}: HTTP ${response.status}`);
    error.code = answer.code;
    error.detail = answer.detail;
    throw error;
  }
  return answer;
}
