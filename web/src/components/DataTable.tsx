import type { TableModel } from "../tables";

export function DataTable({ table, caption }: { table: TableModel; caption: string }) {
  return (
    <div class="table-wrap" role="region" aria-label={caption} tabIndex={0}>
      <table data-testid="insight-table">
        <caption>{caption}</caption>
        <thead>
          <tr>
            <th scope="col">{table.title}</th>
            {table.columns.map((c) => (
              <th scope="col">{c}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {table.rows.map((row) => (
            <tr>
              <th scope="row">{row.label}</th>
              {row.cells.map((cell) => (
                <td>{cell}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
      {table.rows.length === 0 && <p class="no-data">No data in this range</p>}
    </div>
  );
}
