// The error the authorisation rules throw; its message is the human-readable reason.
export class AuthError extends Error {
  override name = 'AuthError';
}
