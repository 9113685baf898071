/**
 * A start-up problem the user fixes by changing a flag or a file: main prints its message as
 * one line and exits 1, without a stack trace (as it does for ModelFormatError and ConfigError).
 */
export class StartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StartupError';
  }
}
