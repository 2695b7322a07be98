/** The rule for the API token, checked where the coordinator starts and where the CLI starts it. */
import { CoralError } from "@coral-mesh/sdk-proto";

/** The documented minimum: a token people can type in is a token others can guess. */
export const API_TOKEN_MIN_LENGTH = 32;

export function checkApiToken(token: string | undefined): void {
  if (token !== undefined && token.length < API_TOKEN_MIN_LENGTH) {
    throw new CoralError(
      "api_token_short",
      `The API token is ${token.length} characters long; it must be at least ${API_TOKEN_MIN_LENGTH}: make one with \`openssl rand -hex 32\`.`,
    );
  }
}
