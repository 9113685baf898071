/** Anthropic's error types by HTTP status (its API reference's table); 5xx other than 503 are api_error. */
const ANTHROPIC_ERROR_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  503: 'overloaded_error',
  529: 'overloaded_error',
};

/** An error as Anthropic's API answers it: {type: "error", error: {type, message}}. */
export function anthropicErrorBody(status: number, error: { message: string }) {
  const type = ANTHROPIC_ERROR_TYPES[status] ?? (status >= 500 ? 'api_error' : 'invalid_request_error');
  return { type: 'error', error: { type, message: error.message } };
}
