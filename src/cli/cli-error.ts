// A mistake by the person at the terminal: printed as "postern: <message>", exit code 1.

export class CliError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CliError';
  }
}
