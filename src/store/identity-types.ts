// What the homeserver remembers of 3PID bindings it made at identity servers on a user's behalf
// (POST /account/3pid/bind): which identity server each (medium, address) was bound at, so that
// an unbind without id_server (and account deactivation) knows where to unbind.
//
// Invariants every backend keeps:
// - A binding is keyed by (user, medium, address, id_server); adding it again changes nothing.
// - listIdentityBindings returns a user's bindings ordered by medium, address, id_server; other
//   users' are never included. Removing an absent binding is a no-op.

export interface IdentityBinding {
  medium: string;
  address: string;
  idServer: string;
}

export interface IdentityBindingStore {
  addIdentityBinding(userId: string, binding: IdentityBinding): Promise<void>;
  removeIdentityBinding(userId: string, binding: IdentityBinding): Promise<void>;
  listIdentityBindings(userId: string): Promise<IdentityBinding[]>;
}
