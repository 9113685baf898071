/** A model or adapter file Loom cannot use; the message names the file and the problem in one line. */
export class ModelFormatError extends Error {
  readonly file: string;
  readonly problem: string;

  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`);
    this.name = 'ModelFormatError';
    this.file = file;
    this.problem = problem;
  }
}
