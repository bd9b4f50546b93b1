// Calls to the service's public JSON API, relative to this page (so a reverse-proxy prefix works).
// Errors come back as ApiError carrying the RFC 9457 problem (title, detail, code, request_id).

export class ApiError extends Error {
  constructor(problem, status) {
    super(problem.title);
    this.problem = problem;
    this.status = status;
  }
}

function endpoint(path, params) {
  const url = new URL(path, document.baseURI);
  for (const [key, value] of params) {
    url.searchParams.append(key, String(value));
  }
  return url;
}

async function problemOf(response) {
  const type = response.headers.get("content-type") || "";
  let body = {};
  if (type.includes("json")) {
    body = await response.json().catch(() => ({}));
  }
  return {
    title: body.title || response.statusText || "Request failed",
    detail: body.detail || "",
    code: body.code || `http_${response.status}`,
    request_id: body.request_id || response.headers.get("x-request-id") || null,
  };
}

async function send(url, init) {
  let response;
  try {
    response = await fetch(url, { cache: "no-store", credentials: "same-origin", ...init });
  } catch (error) {
    throw new ApiError(
      { title: "Service unreachable", detail: String(error.message || error), code: "network_error" },
      0,
    );
  }
  if (!response.ok) {
    throw new ApiError(await problemOf(response), response.status);
  }
  return response.json();
}

// POST the film as multipart field `file` to /classify, /ground or /segment; `params` is a list of
// [name, value] pairs (repeatable names). Returns the parsed JSON and the round-trip time in ms.
export async function postImage(path, params, file, apiKey) {
  const body = new FormData();
  body.append("file", file, file.name || "film");
  const headers = apiKey ? { "X-API-Key": apiKey } : {};
  const started = performance.now();
  const result = await send(endpoint(path, params), { method: "POST", body, headers });
  return { result, elapsedMs: performance.now() - started };
}

export async function getJson(path) {
  return send(endpoint(path, []), { method: "GET" });
}

// Readiness without throwing: {ready, detail}.
export async function readiness() {
  try {
    await getJson("health/ready");
    return { ready: true, detail: "" };
  } catch (error) {
    const problem = error instanceof ApiError ? error.problem : { detail: String(error) };
    return { ready: false, detail: problem.detail || problem.title || "" };
  }
}
