import type { OpenAiErrorBody } from './api-error.js';

/**
 * LoRAX's (and TGI's) status for an error Loom answers 400: 422, their "Input validation
 * error", which their clients raise as a ValidationError. Other statuses stay.
 */
export function textGenerationStatus(status: number): number {
  return status === 400 ? 422 : status;
}

/** LoRAX's error types by status; other 4xx are `validation`, other 5xx `generation`. */
const ERROR_TYPES: Record<number, string> = {
  401: 'authentication',
  404: 'not_found',
  429: 'overloaded',
  503: 'overloaded',
};

/** An error as LoRAX answers it: {error, error_type}, the type its Python client picks the exception by. */
export function textGenerationErrorBody(status: number, error: OpenAiErrorBody['error']) {
  const errorType =
    error.code === 'incomplete_generation'
      ? 'incomplete_generation'
      : (ERROR_TYPES[status] ?? (status >= 500 ? 'generation' : 'validation'));
  return { error: error.message, error_type: errorType };
}
