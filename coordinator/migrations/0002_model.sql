CREATE TABLE `metric_frames` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`agent_name` text NOT NULL,
	`start_time` integer NOT NULL,
	`end_time` integer NOT NULL,
	`samples` integer NOT NULL,
	`data` blob NOT NULL
);
--> statement-breakpoint
CREATE INDEX `metric_frames_agent_time` ON `metric_frames` (`agent_name`,`start_time`);--> statement-breakpoint
CREATE INDEX `metric_frames_time` ON `metric_frames` (`start_time`);--> statement-breakpoint
CREATE TABLE `metric_rollups` (
	`agent_name` text NOT NULL,
	`resolution_ms` integer NOT NULL,
	`bucket_start` integer NOT NULL,
	`data` blob NOT NULL,
	PRIMARY KEY(`resolution_ms`, `agent_name`, `bucket_start`)
);
--> statement-breakpoint
CREATE INDEX `metric_rollups_time` ON `metric_rollups` (`resolution_ms`,`bucket_start`);--> statement-breakpoint
CREATE TABLE `metric_series` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`agent_name` text NOT NULL,
	`name` text NOT NULL,
	`subject_kind` text NOT NULL,
	`subject_id` text NOT NULL,
	`labels` text DEFAULT '{}' NOT NULL,
	`source` text,
	`first_seen_at` integer NOT NULL,
	`last_seen_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `metric_series_identity` ON `metric_series` (`agent_name`,`subject_id`,`name`,`labels`);--> statement-breakpoint
CREATE INDEX `metric_series_last_seen` ON `metric_series` (`last_seen_at`);--> statement-breakpoint
CREATE TABLE `store_state` (
	`key` text PRIMARY KEY NOT NULL,
	`value` integer NOT NULL
);
--> statement-breakpoint
PRAGMA foreign_keys=OFF;--> statement-breakpoint
CREATE TABLE `__new_topology_edges` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`agent_name` text NOT NULL,
	`from_service` text NOT NULL,
	`to_address` text NOT NULL,
	`to_port` integer NOT NULL,
	`protocol` text NOT NULL,
	`first_seen_at` integer NOT NULL,
	`last_seen_at` integer NOT NULL,
	`observations` integer DEFAULT 1 NOT NULL
);
--> statement-breakpoint
INSERT INTO `__new_topology_edges`("agent_name", "from_service", "to_address", "to_port", "protocol", "first_seen_at", "last_seen_at", "observations") SELECT "agent_name", "from_service", "to_address", "to_port", "protocol", "first_seen_at", "last_seen_at", "observations" FROM `topology_edges`;--> statement-breakpoint
DROP TABLE `topology_edges`;--> statement-breakpoint
ALTER TABLE `__new_topology_edges` RENAME TO `topology_edges`;--> statement-breakpoint
PRAGMA foreign_keys=ON;--> statement-breakpoint
CREATE UNIQUE INDEX `topology_edges_identity` ON `topology_edges` (`agent_name`,`from_service`,`to_address`,`to_port`,`protocol`);--> statement-breakpoint
CREATE INDEX `topology_edges_last_seen` ON `topology_edges` (`last_seen_at`);--> statement-breakpoint
CREATE TABLE `topology_edge_hours` (
	`edge_id` integer NOT NULL,
	`hour` integer NOT NULL,
	`observations` integer NOT NULL,
	PRIMARY KEY(`edge_id`, `hour`),
	FOREIGN KEY (`edge_id`) REFERENCES `topology_edges`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `topology_edge_hours_hour` ON `topology_edge_hours` (`hour`);--> statement-breakpoint
CREATE TABLE `__new_events` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`agent_name` text,
	`sequence` integer,
	`position` integer,
	`kind` text NOT NULL,
	`time` integer NOT NULL,
	`received_at` integer DEFAULT 0 NOT NULL,
	`subject_kind` text NOT NULL,
	`subject_id` text NOT NULL,
	`subject_name` text,
	`attributes` text DEFAULT '{}' NOT NULL,
	`evidence` text DEFAULT '{}' NOT NULL,
	`source` text
);
--> statement-breakpoint
INSERT INTO `__new_events`("id", "agent_name", "sequence", "position", "kind", "time", "received_at", "subject_kind", "subject_id", "subject_name", "attributes", "evidence", "source") SELECT "id", "agent_name", "sequence", "position", "kind", "time", "time", "subject_kind", "subject_id", "subject_name", "attributes", "evidence", "source" FROM `events`;--> statement-breakpoint
DROP TABLE `events`;--> statement-breakpoint
ALTER TABLE `__new_events` RENAME TO `events`;--> statement-breakpoint
CREATE UNIQUE INDEX `events_batch_position` ON `events` (`agent_name`,`sequence`,`position`);--> statement-breakpoint
CREATE INDEX `events_time` ON `events` (`time`);--> statement-breakpoint
CREATE INDEX `events_kind_time` ON `events` (`kind`,`time`);--> statement-breakpoint
CREATE INDEX `events_agent_time` ON `events` (`agent_name`,`time`);--> statement-breakpoint
ALTER TABLE `agents` ADD `addresses` text DEFAULT '[]' NOT NULL;--> statement-breakpoint
ALTER TABLE `agents` ADD `clock_offset_ms` integer;--> statement-breakpoint
ALTER TABLE `agents` ADD `health` text;--> statement-breakpoint
ALTER TABLE `services` ADD `listening` text DEFAULT '[]' NOT NULL;--> statement-breakpoint
ALTER TABLE `services` ADD `executable` text;--> statement-breakpoint
CREATE INDEX `services_name` ON `services` (`name`);--> statement-breakpoint
CREATE INDEX `services_last_seen` ON `services` (`last_seen_at`);