/** A command line Loom cannot run: main prints the message as one line and exits 2. */
export class CliError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CliError';
  }
}
