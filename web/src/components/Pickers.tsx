import { useEffect, useState } from "preact/hooks";
import type { Breakdown, Definitions, Filter, FilterOp, PropertyDefinition } from "../types";
import { formatFilterValue, parseFilterValue } from "../filters";

interface Option {
  value: string;
  text: string;
}

export function SelectField(props: {
  label: string;
  name: string;
  value: string;
  options: Option[];
  onChange: (value: string) => void;
}) {
  const options = props.options.some((o) => o.value === props.value)
    ? props.options
    : [{ value: props.value, text: props.value || "(none)" }, ...props.options];
  return (
    <label class="field">
      <span class="field-label">{props.label}</span>
      <select name={props.name} value={props.value} onChange={(e) => props.onChange(e.currentTarget.value)}>
        {options.map((o) => (
          <option value={o.value}>{o.text}</option>
        ))}
      </select>
    </label>
  );
}

export function NumberField(props: {
  label: string;
  name: string;
  value: number | undefined;
  min?: number;
  max?: number;
  onChange: (value: number) => void;
}) {
  return (
    <label class="field">
      <span class="field-label">{props.label}</span>
      <input
        type="number"
        name={props.name}
        min={props.min}
        max={props.max}
        step={1}
        value={props.value ?? ""}
        onInput={(e) => {
          const n = e.currentTarget.valueAsNumber;
          if (Number.isFinite(n)) props.onChange(n);
        }}
      />
    </label>
  );
}

export function DateRange(props: { from: string; to: string; onChange: (patch: { date_from?: string; date_to?: string }) => void }) {
  return (
    <div class="field-row">
      <label class="field">
        <span class="field-label">From</span>
        <input type="date" name="date_from" value={props.from} onInput={(e) => e.currentTarget.value && props.onChange({ date_from: e.currentTarget.value })} />
      </label>
      <label class="field">
        <span class="field-label">To</span>
        <input type="date" name="date_to" value={props.to} onInput={(e) => e.currentTarget.value && props.onChange({ date_to: e.currentTarget.value })} />
      </label>
    </div>
  );
}

/** An event picker fed by the definitions; a free-text input when they could not be loaded. */
export function EventPicker(props: {
  label: string;
  name: string;
  value: string;
  events: string[] | null;
  extra?: Option[];
  onChange: (value: string) => void;
}) {
  if (props.events === null) {
    return (
      <label class="field">
        <span class="field-label">{props.label}</span>
        <input type="text" name={props.name} value={props.value} onInput={(e) => props.onChange(e.currentTarget.value)} />
      </label>
    );
  }
  return (
    <SelectField
      label={props.label}
      name={props.name}
      value={props.value}
      options={[...(props.extra ?? []), ...props.events.map((e) => ({ value: e, text: e }))]}
      onChange={props.onChange}
    />
  );
}

export function propertyOptions(props: PropertyDefinition[]): Option[] {
  return props.map((p) => ({ value: p.name, text: `${p.name} (${p.type ?? "unknown"})` }));
}

const OPS: [FilterOp, string][] = [
  ["eq", "equals"],
  ["neq", "does not equal"],
  ["in", "is one of"],
  ["gt", ">"],
  ["gte", "≥"],
  ["lt", "<"],
  ["lte", "≤"],
  ["contains", "contains"],
  ["is_set", "is set"],
  ["is_not_set", "is not set"],
];
const VALUELESS: FilterOp[] = ["is_set", "is_not_set"];

function propertiesOf(defs: Definitions | null, type: "event" | "person"): PropertyDefinition[] {
  return (type === "event" ? defs?.event_properties : defs?.person_properties) ?? [];
}

function FilterRow(props: {
  filter: Filter;
  defs: Definitions | null;
  index: number;
  types: Filter["type"][];
  onChange: (f: Filter) => void;
  onRemove: () => void;
}) {
  const { filter, defs } = props;
  const props_ = propertiesOf(defs, filter.type);
  const propType = props_.find((p) => p.name === filter.property)?.type;
  const [raw, setRaw] = useState(formatFilterValue(filter.value));
  // Keep what the person typed ("a, " while typing a list) unless the value changed from elsewhere.
  useEffect(() => {
    if (JSON.stringify(parseFilterValue(raw, filter.op, propType)) !== JSON.stringify(filter.value ?? "")) {
      setRaw(formatFilterValue(filter.value));
    }
  }, [filter.value]);
  const n = props.index + 1;
  return (
    <div class="filter-row">
      {props.types.length > 1 && (
        <SelectField
          label={`Filter ${n} on`}
          name="filter_type"
          value={filter.type}
          options={[
            { value: "event", text: "Event property" },
            { value: "person", text: "Person property" },
          ].filter((o) => props.types.includes(o.value as Filter["type"]))}
          onChange={(v) => props.onChange({ ...filter, type: v as Filter["type"] })}
        />
      )}
      <SelectField
        label={props.types.length > 1 ? "Property" : `Filter ${n} property`}
        name="filter_property"
        value={filter.property}
        options={propertyOptions(props_)}
        onChange={(v) => props.onChange({ ...filter, property: v })}
      />
      <SelectField
        label="Operator"
        name="filter_op"
        value={filter.op}
        options={OPS.map(([value, text]) => ({ value, text }))}
        onChange={(v) => {
          const op = v as FilterOp;
          const next: Filter = { ...filter, op };
          if (VALUELESS.includes(op)) delete next.value;
          else next.value = parseFilterValue(raw, op, propType);
          props.onChange(next);
        }}
      />
      {!VALUELESS.includes(filter.op) && (
        <label class="field">
          <span class="field-label">{filter.op === "in" ? "Values (comma separated)" : "Value"}</span>
          <input
            type="text"
            name="filter_value"
            value={raw}
            onInput={(e) => {
              const text = e.currentTarget.value;
              setRaw(text);
              props.onChange({ ...filter, value: parseFilterValue(text, filter.op, propType) });
            }}
          />
        </label>
      )}
      <button type="button" class="remove" aria-label={`Remove filter ${n}`} onClick={props.onRemove}>
        Remove
      </button>
    </div>
  );
}

/** Filter rows on event or person properties; `types` narrows them (one type: no type picker). */
export function FilterRows(props: {
  filters: Filter[] | undefined;
  defs: Definitions | null;
  onChange: (filters: Filter[]) => void;
  legend: string;
  types?: Filter["type"][];
}) {
  const filters = props.filters ?? [];
  const types = props.types ?? ["event", "person"];
  const add = () => {
    const type = types[0];
    const first = propertiesOf(props.defs, type)[0]?.name ?? "";
    props.onChange([...filters, { type, property: first, op: "eq", value: "" }]);
  };
  return (
    <fieldset class="filters">
      <legend>{props.legend}</legend>
      {filters.map((f, i) => (
        <FilterRow
          filter={f}
          defs={props.defs}
          index={i}
          types={types}
          onChange={(nf) => props.onChange(filters.map((x, j) => (j === i ? nf : x)))}
          onRemove={() => props.onChange(filters.filter((_, j) => j !== i))}
        />
      ))}
      <button type="button" onClick={add}>
        Add filter
      </button>
    </fieldset>
  );
}

export function BreakdownEditor(props: {
  breakdown: Breakdown | undefined;
  defs: Definitions | null;
  types: ("event" | "person")[];
  onChange: (b: Breakdown | undefined) => void;
}) {
  const [type, setType] = useState<"event" | "person">(props.breakdown?.type ?? props.types[0]);
  const bd = props.breakdown;
  return (
    <fieldset class="breakdown">
      <legend>Breakdown</legend>
      <div class="field-row">
        {props.types.length > 1 && (
          <SelectField
            label="Breakdown by"
            name="breakdown_type"
            value={type}
            options={[
              { value: "event", text: "Event property" },
              { value: "person", text: "Person property" },
            ]}
            onChange={(v) => {
              const t = v as "event" | "person";
              setType(t);
              if (bd) props.onChange({ ...bd, type: t });
            }}
          />
        )}
        <SelectField
          label="Breakdown property"
          name="breakdown_property"
          value={bd?.property ?? ""}
          options={[{ value: "", text: "None" }, ...propertyOptions(propertiesOf(props.defs, type))]}
          onChange={(v) => props.onChange(v ? { type, property: v, limit: bd?.limit ?? 10 } : undefined)}
        />
        {bd && (
          <NumberField
            label="Breakdown limit"
            name="breakdown_limit"
            min={1}
            value={bd.limit}
            onChange={(limit) => props.onChange({ ...bd, limit })}
          />
        )}
      </div>
    </fieldset>
  );
}
