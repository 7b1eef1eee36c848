// Generated from the Rust types by `crates/app/src/bindings.rs`: do not edit. After changing
// them, run `CALLPOP_BLESS=1 cargo test -p callpop-app --lib bindings` to rewrite this file.
//
// The IPC contract between the CallPop window and the engine: every IPC access of the
// window goes through `commands` and `events` below.
import { invoke } from "@tauri-apps/api/core";
import { listen } from "@tauri-apps/api/event";

export type Provider = "ringcentral" | "ringotel";
export type Transport = "auto" | "webhook" | "websocket";
export type CallDirection = "inbound" | "outbound" | "internal" | "unknown";
export type CallState = "ringing" | "connected" | "ended" | "unknown";
export type CallResult = "answered" | "missed" | "voicemail" | "no_answer" | "no_end_reported";
export type LegState = "ringing" | "connected" | "held" | "voicemail" | "ended" | "other";
export type LegDirection = "inbound" | "outbound";
export type ExtensionPart = {
  /** Provider extension id. */
  extension_id?: string,
  /** Extension number. */
  extension_number?: string,
  /** The user's name. */
  name?: string,
  /** This extension's direction in the call. */
  direction?: LegDirection,
  /** It rang (or dialled) at this extension. */
  rang: boolean,
  /** This extension talked on the call. */
  answered: boolean,
  /** The extension's own talk time. */
  talk_seconds: number,
  /** The extension's latest state. */
  state: LegState | null,
  /** How the call turned out for this desk, once it is over: `answered` when it talked, or when it first rang before a colleague answered (a ring group, a hunt); `missed` (or `voicemail`) when it did not answer and nobody answered the call, or another desk had answered before it first rang (a transfer it did not pick up); for the desk that placed a call, the call's result. Filters on an extension use it. */
  outcome?: CallResult,
};
export type CallView = {
  /** Row id. */
  id: number,
  /** Phone system. */
  provider: Provider,
  /** The provider's call id. */
  call_key: string,
  /** From the dealership's side. */
  direction: CallDirection,
  /** Where the call is now. */
  state: CallState,
  /** How it turned out, once known. */
  result: CallResult | null,
  /** Calling number as sent. */
  from: string | null,
  /** Calling number, E.164. */
  from_e164: string | null,
  /** Caller ID name. */
  from_name: string | null,
  /** Called number as sent. */
  to: string | null,
  /** Called number, E.164. */
  to_e164: string | null,
  /** Called party's name. */
  to_name: string | null,
  /** The dealership's name for the dialled line ("Sales"), when one is configured. */
  line_label: string | null,
  /** Extensions that rang, answered or placed the call. */
  extensions: Array<ExtensionPart>,
  /** First sign of the call. */
  started_at: string,
  /** First answer. */
  answered_at: string | null,
  /** End. */
  ended_at: string | null,
  /** Seconds ringing. */
  ring_seconds: number,
  /** Seconds talking. */
  talk_seconds: number,
  /** Recording location. */
  recording_url: string | null,
  /** Voicemail message id. */
  voicemail_id: string | null,
  /** Voicemail length. */
  voicemail_seconds: number | null,
  /** Voicemail audio location. */
  voicemail_url: string | null,
  /** Deliveries that made this call. */
  event_count: number,
  /** Newest event. */
  last_event_at: string,
  /** When the row last changed. */
  updated_at: string,
};
export type CallQuery = {
  /** A number fragment in any format, a name or an extension. */
  search?: string | null,
  /** Calls that started at or after this time (RFC 3339). */
  since?: string | null,
  /** Calls that started before this time (RFC 3339). */
  until?: string | null,
  /** Only this outcome. */
  result?: CallResult | null,
  /** Only this direction. */
  direction?: CallDirection | null,
  /** Only calls this extension took part in. */
  extension?: string | null,
  /** Only calls of the watched extensions. */
  mine?: boolean | null,
  /** Page size (0 = every call, for export). */
  limit: number,
  /** `next_cursor` of the previous page. */
  cursor?: string | null,
};
export type CallPage = {
  /** Newest first. */
  calls: Array<CallView>,
  /** Pass back for the next page; `null` after the last one. */
  next_cursor: string | null,
  /** How many calls match, when at most [`COUNT_CAP`] do (first page only). */
  total: number | null,
  /** Set instead of `total` when more than this many match. */
  total_at_least: number | null,
};
export type TimelineEntry = {
  /** When it happened. */
  at: string,
  /** The leg (party) it is about. */
  leg: string,
  /** The leg's extension number (or id). */
  extension: string | null,
  /** Which kind of event said so (`telephony_session`, `presence`, `call_log`, `ringotel_start`, …, `voicemail`). */
  source: string,
  /** Normalized leg state. */
  state: LegState | null,
  /** The provider's status code as sent. */
  code: string | null,
  /** The provider's reason (`BlindTransfer`, …). */
  reason: string | null,
  /** The raw delivery it came from. */
  delivery_id: number,
};
export type DeliveryView = {
  /** Row id (`callpop events replay ID`). */
  id: number,
  /** Phone system. */
  provider: Provider,
  /** Event type. */
  kind: string,
  /** De-duplication key. */
  dedup_key: string,
  /** When CallPop received it. */
  received_at: string,
  /** Times it was delivered again. */
  redeliveries: number,
  /** Kept request headers. */
  headers: { [key in string]: string },
  /** The body as text (cut at 64 KiB). */
  body: string,
};
export type CallDetail = {
  /** The call. */
  call: CallView,
  /** The "Open in CRM" link, filled exactly as the popup's button fills it (`callpop_core::crm`); none without a template. */
  crm_url: string | null,
  /** Its events, oldest first. */
  timeline: Array<TimelineEntry>,
  /** Its deliveries, newest first. */
  deliveries: Array<DeliveryView>,
  /** Why the timeline and deliveries are missing, when they are (on a desk, they are kept at the hub, which may be out of reach). */
  remote_note: string | null,
};
export type ExportResult = {
  /** The CSV file. */
  path: string,
  /** The folder it is in. */
  folder: string,
  /** Calls written. */
  rows: number,
};
export type DateOrder = "mdy" | "dmy" | "ymd";
export type DateStyle = {
  /** Day, month and year order. */
  order: DateOrder,
  /** "2:05:09 PM" rather than "14:05:09". */
  hour12: boolean,
};
export type ExportRequest = {
  /** Which calls (page size and cursor are ignored: every matching call is written). */
  query: CallQuery,
  /** The folder to write to; `null` for the default (Downloads). */
  folder?: string | null,
  /** How dates and times are written. */
  dates: DateStyle,
};
export type ExportFolder = {
  /** What people call it ("Downloads"). */
  label: string,
  /** Its full path. */
  path: string,
};
export type LinkOutcome = "opened" | "no_handler";
export type RingotelToken = {
  /** The token; `null` when the check is turned off (an empty environment value). */
  token: string | null,
  /** Set by `CALLPOP_RINGOTEL_API_TOKEN`, so the window cannot change it. */
  from_environment: boolean,
};
export type PartStatus = {
  /** Short machine-readable state (`active`, `off`, `error`, …). */
  state: string,
  /** One sentence for people. */
  detail: string,
  /** When the state last changed. */
  since: string,
  /** The Settings section whose fields fix this part (`ringcentral`, `tunnel`), when retrying cannot: refused credentials are fixed by typing new ones, not by re-creating the subscription. */
  fix: string | null,
};
export type Attention = {
  /** The first missing piece, in plain language. */
  text: string,
  /** The Settings section to open (`tunnel`, `ringcentral`, `ringotel`), when a setting fixes it. */
  fix: string | null,
};
export type ProviderCounters = {
  /** Deliveries stored for the first time. */
  accepted: number,
  /** Re-deliveries acknowledged without change. */
  duplicates: number,
  /** Rejected for a missing or wrong token. */
  unauthorized: number,
  /** Rejected as malformed (4xx other than 401). */
  rejected: number,
  /** Authenticated but unusable bodies kept in quarantine. */
  quarantined: number,
  /** RingCentral validation handshakes answered. */
  handshakes: number,
  /** When the last delivery was stored. */
  last_accepted_at: string | null,
  /** Deliveries that looked like this provider's (its route with a token header, or its body shape) refused for a token that does not match: each is a customer call lost. Scanners without a token count under `unauthorized` only. */
  wrong_token: number,
  /** When the last of those was refused. */
  last_wrong_token_at: string | null,
  /** Whether deliveries must carry the configured token. */
  token_required: boolean,
};
export type DeskRow = {
  /** Its name. */
  name: string,
  /** Its live stream is open. */
  connected: boolean,
  /** Where it connects from. */
  address: string | null,
  /** Its CallPop version. */
  version: string | null,
  /** When the hub last heard from it (RFC 3339). */
  last_seen: string | null,
  /** It was removed from the hub. */
  removed: boolean,
};
export type HubPanel = {
  /** `standalone`, `hub` or `desk`. */
  role: string,
  /** On a hub: its own name; on a desk: its hub's. */
  hub_name: string | null,
  /** On a hub: the address desks join with; on a desk: where it reaches its hub. */
  address: string | null,
  /** The hub's identity as people compare it (`4791-58D8-F767-8105`). */
  identity: string | null,
  /** On a desk: its name at the hub. */
  desk_name: string | null,
  /** On a desk: its link to the hub. */
  link: HubLinkView | null,
  /** On a hub: its desks, paired first, removed last. */
  desks: Array<DeskRow>,
  /** Why the hub is not serving desks, when it should be. */
  problem: string | null,
};
export type PairingCode = {
  /** The code, `K7M2Q-9XH4P`. */
  code: string,
  /** The address to type with it. */
  address: string,
  /** Every address the hub can be reached at. */
  addresses: Array<string>,
  /** The hub's identity, for comparing on the desk. */
  identity: string,
  /** When it stops working (RFC 3339). */
  expires_at: string,
};
export type FoundHubRow = {
  /** Its name. */
  name: string,
  /** The address to join it at. */
  address: string,
  /** Its identity as people compare it. */
  identity: string,
};
export type JoinRequest = {
  /** The hub's address (`host` or `host:port`). */
  address: string,
  /** The pairing code shown on the hub. */
  code: string,
  /** This desk's name at the hub. */
  name: string,
};
export type DeskView = {
  /** The desk's name. */
  name: string,
  /** Whether its live stream is open. */
  connected: boolean,
  /** The address it connects from. */
  address: string | null,
  /** Its CallPop version. */
  version: string | null,
  /** When the hub last heard from it. */
  last_seen: string | null,
  /** Changes on disk at the hub that it has not been sent yet. */
  lag: number | null,
};
export type HubLinkView = {
  /** The hub's name. */
  hub_name: string,
  /** Where the desk reaches it. */
  address: string,
  /** `connecting`, `connected`, `reconnecting`, `identity_changed`, `removed` or `update_needed`. */
  state: string,
  /** Since when it is in that state. */
  since: string,
  /** What went wrong, in plain words, when not connected. */
  problem: string | null,
  /** Whether the hub itself is receiving calls (None until it said). */
  hub_receiving: boolean | null,
  /** The hub's own one-line status. */
  hub_headline: string | null,
};
export type HealthView = {
  /** `ok`, `degraded` (a part needs attention), `not_receiving` (no call can reach this desk) or `error` (deliveries cannot be stored). */
  status: "ok" | "degraded" | "not_receiving" | "error",
  /** Why the status is not `ok` when one thing explains it, with where to fix it. */
  attention: Attention | null,
  /** CallPop version. */
  version: string,
  /** When the engine started. */
  started_at: string | null,
  /** Where the local receiver listens. */
  listen: string | null,
  /** The public base URL (tunnel or provided), when there is one. */
  public_url: string | null,
  /** Where RingCentral must send webhooks (public URL + path). */
  ringcentral_webhook_url: string | null,
  /** Where Ringotel must send webhooks — paste it into the Ringotel portal. */
  ringotel_webhook_url: string | null,
  /** RingCentral receiver counters. */
  ringcentral: ProviderCounters,
  /** Ringotel receiver counters. */
  ringotel: ProviderCounters,
  /** How RingCentral sends calls now: `websocket` or `webhook` (none without RingCentral credentials). */
  ringcentral_transport: string | null,
  /** The last storage failure, while it lasts (`unwritable: disk full (…)`). */
  storage_error: string | null,
  /** When deliveries started failing to be stored (kept while the failure lasts). */
  storage_error_since: string | null,
  /** How often the history's writer died after a bug and was started again since CallPop started (0 normally): worth reporting even though calls are stored again. */
  writer_restarts: number,
  /** Why the writer last died, once it has. */
  writer_last_failure: string | null,
  /** On a hub: its desks as it sees them now (empty elsewhere). */
  desks: Array<DeskView>,
  /** On a desk: its link to the hub (None elsewhere). */
  hub_link: HubLinkView | null,
  /** Background parts by name (`subscription`, `tunnel`, `notifications`, …). */
  parts: { [key in string]: PartStatus },
};
export type LineLabel = {
  /** The line's number (any format; compared as E.164). */
  number: string,
  /** Its label. */
  label: string,
};
export type QuietHoursView = {
  /** First quiet minute. */
  start: string,
  /** First minute after. */
  end: string,
};
export type RingCentralView = {
  /** API server. */
  server: string,
  /** App client id. */
  client_id: string,
  /** A client secret is stored. */
  client_secret_set: boolean,
  /** A JWT is stored. */
  jwt_set: boolean,
  /** How RingCentral sends calls (`auto` prefers the WebSocket). */
  transport: Transport,
};
export type RingotelView = {
  /** An api token is stored. */
  api_token_set: boolean,
  /** The token comes from `CALLPOP_RINGOTEL_API_TOKEN`, which wins over Settings. */
  api_token_from_environment: boolean,
};
export type TunnelModeView = "off" | "ngrok" | "provided";
export type TunnelView = {
  /** Source. */
  mode: TunnelModeView,
  /** An ngrok authtoken is stored. */
  ngrok_authtoken_set: boolean,
  /** ngrok domain. */
  ngrok_domain: string,
  /** Provided public URL. */
  public_url: string,
};
export type NotificationsView = "auto" | "on" | "off";
export type PopupsView = {
  /** auto / on / off. */
  notifications: NotificationsView,
  /** No popups in these hours. */
  quiet_hours: QuietHoursView | null,
  /** Most call popups on screen. */
  max_on_screen: number,
  /** "Open in CRM" link template ("" = none). */
  crm_url_template: string,
  /** How long an answered popup stays. */
  answered_close_seconds: number,
};
export type GeneralView = {
  /** Start at login (hidden in the tray). */
  autostart: boolean,
  /** The window's close button hides it to the tray. */
  close_to_tray: boolean,
  /** Where the history lives (read-only). */
  data_dir: string,
  /** Country for national numbers. */
  default_country: string,
};
export type SettingsView = {
  /** RingCentral. */
  ringcentral: RingCentralView,
  /** Ringotel. */
  ringotel: RingotelView,
  /** Public URL. */
  tunnel: TunnelView,
  /** Watched extensions. */
  watch_extensions: Array<string>,
  /** Dealership line names. */
  line_labels: Array<LineLabel>,
  /** Popups. */
  popups: PopupsView,
  /** General. */
  general: GeneralView,
  /** On a desk: the name of the hub whose settings RingCentral, Ringotel and the public URL are (shown read-only here). */
  managed_by_hub: string | null,
};
export type RingCentralUpdate = {
  /** API server. */
  server: string,
  /** App client id. */
  client_id: string,
  /** New client secret. */
  client_secret?: string | null,
  /** New JWT. */
  jwt?: string | null,
  /** How RingCentral sends calls. */
  transport: Transport,
};
export type RingotelUpdate = {
  /** New api token. */
  api_token?: string | null,
};
export type TunnelUpdate = {
  /** Source. */
  mode: TunnelModeView,
  /** New ngrok authtoken. */
  ngrok_authtoken?: string | null,
  /** ngrok domain. */
  ngrok_domain: string,
  /** Provided public URL. */
  public_url: string,
};
export type GeneralUpdate = {
  /** Start at login. */
  autostart: boolean,
  /** Close hides to tray. */
  close_to_tray: boolean,
  /** Country for national numbers. */
  default_country: string,
};
export type SettingsUpdate = {
  /** RingCentral. */
  ringcentral: RingCentralUpdate,
  /** Ringotel. */
  ringotel: RingotelUpdate,
  /** Public URL. */
  tunnel: TunnelUpdate,
  /** Watched extensions. */
  watch_extensions: Array<string>,
  /** Dealership line names. */
  line_labels: Array<LineLabel>,
  /** Popups. */
  popups: PopupsView,
  /** General. */
  general: GeneralUpdate,
  /** The person has confirmed the changes [`SettingsUpdate::confirmations`] asked about (a new public URL, credentials cleared by a server change). */
  confirmed: boolean,
};
export type FieldError = {
  /** Dotted path. */
  field: string,
  /** What to fix. */
  message: string,
};
export type Confirmation = {
  /** The field it is about. */
  field: string,
  /** The question, in plain words. */
  question: string,
};
export type SaveResult = {
  /** Always true. */
  ok: true,
  /** The settings now in force. */
  settings: SettingsView,
} | {
  /** Always false. */
  ok: false,
  /** One message per bad field. */
  errors: Array<FieldError>,
} | {
  /** Always false. */
  ok: false,
  /** What to ask. */
  confirmations: Array<Confirmation>,
};
export type ActionResult = {
  /** It worked. */
  ok: boolean,
  /** What happened, for people. */
  message: string,
};
export type PauseState = {
  /** Popups are paused now. */
  paused: boolean,
  /** Until when (`None` while paused = until resumed). */
  until: string | null,
};
export type HealthAction = "reconnect_tunnel" | "recreate_subscription" | "backfill_now" | "reconnect_websocket";

export const commands = {
  /** A page of the call log, newest first. */
  listCalls: (query: CallQuery) => invoke<CallPage>("list_calls", { query }),
  /** One call with its timeline and raw deliveries. */
  getCall: (id: number) => invoke<CallDetail>("get_call", { id }),
  /** The folders the export dialog offers, the default (Downloads) first. */
  exportFolders: () => invoke<Array<ExportFolder>>("export_folders"),
  /** Every call of the query (all pages) to a CSV file for a spreadsheet. */
  exportCsv: (request: ExportRequest) => invoke<ExportResult>("export_csv", { request }),
  /** Opens a file exported this session in the desktop's program for it. */
  openExport: (path: string) => invoke<null>("open_export", { path }),
  /** Shows the folder of a file exported this session. */
  showExport: (path: string) => invoke<null>("show_export", { path }),
  /** Fetches a call's RingCentral voicemail and opens it in the audio player; the file. */
  playVoicemail: (id: number) => invoke<string>("play_voicemail", { id }),
  /** Opens a web, phone or e-mail link and says whether anything took it. */
  openLink: (url: string) => invoke<LinkOutcome>("open_link", { url }),
  /** The settings page (secrets only as "set"). */
  getSettings: () => invoke<SettingsView>("get_settings"),
  /** Validates and saves settings, then restarts the engine with them. */
  saveSettings: (update: SettingsUpdate) => invoke<SaveResult>("save_settings", { update }),
  /** Signs in to RingCentral with the saved credentials. */
  testRingcentral: () => invoke<ActionResult>("test_ringcentral"),
  /** The Ringotel webhook token, to copy into the Ringotel portal. */
  getRingotelToken: () => invoke<RingotelToken>("get_ringotel_token"),
  /** The health board. */
  getHealth: () => invoke<HealthView>("get_health"),
  /** One of the health page's fixes. */
  runHealthAction: (action: HealthAction) => invoke<ActionResult>("run_health_action", { action }),
  /** Whether popups are paused. */
  getPause: () => invoke<PauseState>("get_pause"),
  /** Pauses popups for some minutes (`null` = until resumed). */
  setPause: (minutes: number | null) => invoke<PauseState>("set_pause", { minutes }),
  /** Resumes popups. */
  resume: () => invoke<PauseState>("resume"),
  /** The Hub tab: this CallPop's role, a hub's desks, a desk's link. */
  getHub: () => invoke<HubPanel>("get_hub"),
  /** Makes this CallPop the dealership's hub (`true`) or stops serving desks. */
  setHub: (on: boolean) => invoke<HubPanel>("set_hub", { on }),
  /** "Add a desk": a one-time pairing code (ten minutes, one desk). */
  hubAddDesk: (name: string | null) => invoke<PairingCode>("hub_add_desk", { name }),
  /** Removes a desk from the hub at once. */
  hubRemoveDesk: (name: string) => invoke<HubPanel>("hub_remove_desk", { name }),
  /** Hubs that answer on the network (a few seconds). */
  findHubs: () => invoke<Array<FoundHubRow>>("find_hubs"),
  /** "Join a hub" with the code shown there; then runs as its desk. */
  joinHub: (request: JoinRequest) => invoke<HubPanel>("join_hub", { request }),
  /** Leaves the hub: standalone again, keeping the calls it has. */
  leaveHub: () => invoke<HubPanel>("leave_hub"),
};

export const events = {
  /** A call was stored or changed (at most one per call every 100 ms). */
  callChanged: (cb: (payload: CallView) => void) => listen<CallView>("call-changed", (e) => cb(e.payload)),
  /** The health board changed. */
  healthChanged: (cb: (payload: HealthView) => void) => listen<HealthView>("health-changed", (e) => cb(e.payload)),
  /** A popup's "Open" was clicked: select and show this call. */
  openCall: (cb: (payload: number) => void) => listen<number>("open-call", (e) => cb(e.payload)),
  /** Popups were paused or resumed (from the window or the tray). */
  pauseChanged: (cb: (payload: PauseState) => void) => listen<PauseState>("pause-changed", (e) => cb(e.payload)),
};
