import { Link, useDocumentTitle } from '../router';

export function NotFoundPage() {
  useDocumentTitle('Not found');
  return (
    <section>
      <h1>Page not found</h1>
      <p>
        There is nothing at this address. Check the link, or go back to <Link to="/">your datasets</Link>.
      </p>
    </section>
  );
}

/** Same answer whether the site exists or not: we never confirm another site's private pages. */
export function NotMemberPage({ adminOnly = false }: { adminOnly?: boolean }) {
  useDocumentTitle(adminOnly ? 'Administrators only' : 'Not found');
  return (
    <section data-testid="no-access">
      <h1>{adminOnly ? 'Administrators only' : 'Not found, or not yours to see'}</h1>
      <p>
        {adminOnly
          ? 'Only site administrators can open this page. Ask an administrator at your site if you need a change here.'
          : 'Nothing was found at this address, or it belongs to a site you are not a member of. Pick one of your own sites from the “Site” menu at the top.'}
      </p>
      <p>
        <Link to="/">Go to your datasets</Link>
      </p>
    </section>
  );
}
