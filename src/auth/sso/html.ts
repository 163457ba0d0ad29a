// The few HTML pages of single sign-on and the UIA fallback. Every value that comes from a
// request, a CAS server or a user (URLs, user IDs, display names, error text) goes through
// escapeHtml, in text and in attributes alike (attributes are always double-quoted). Pages load
// nothing from elsewhere except the reCAPTCHA widget script on its own page.

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"'`]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A whole page: `bodyHtml` must already be escaped markup. */
export function page(title: string, bodyHtml: string, head = ''): string {
  return (
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">' +
    '<meta name="viewport" content="width=device-width, initial-scale=1">' +
    `<title>${escapeHtml(title)}</title>${head}</head>\n<body>\n${bodyHtml}\n</body></html>\n`
  );
}

/** An error page with one message. */
export function errorPage(message: string): string {
  return page('Authentication failed', `<h1>Authentication failed</h1>\n<p>${escapeHtml(message)}</p>`);
}

/**
 * The end of a UIA fallback (spec "Fallback"): tells the opener the stage is done, as the spec
 * asks: window.onAuthDone() if the page was loaded in a frame that defines it, and a postMessage
 * "authDone" to the window that opened it.
 */
export function authDonePage(): string {
  const script =
    '<script>if (window.onAuthDone) { window.onAuthDone(); } ' +
    'else if (window.opener && window.opener.postMessage) { window.opener.postMessage("authDone", "*"); }</script>';
  return page('Authentication successful', '<h1>Thank you</h1>\n<p>You may now close this window and return to the application.</p>', script);
}
