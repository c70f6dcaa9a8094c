// A mistake by the person at the terminal: printed as "postern: <message>", exit code 1 (or
// the command's own code for a bad command line, e.g. 2 for `postern doctor`, whose 1 means
// "something FAILs").

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}
