#!/usr/bin/perl
# mkmmdb.pl OUT NETWORK=CC[:CONTINENT][:registered] ...
#
# Write a small MaxMind DB (GeoIP2-Country layout) for tests, with Debian's
# libmaxmind-db-writer-perl. Documentation networks are kept (the writer
# drops reserved networks by default) and IPv4 is reachable in the IPv6
# tree. ":registered" stores the code as registered_country only.
use strict;
use warnings;
use MaxMind::DB::Writer::Tree;

my $out = shift @ARGV or die "usage: mkmmdb.pl OUT NETWORK=CC[:CONTINENT][:registered]...\n";
my %types = (country => 'map', registered_country => 'map', continent => 'map',
             iso_code => 'utf8_string', code => 'utf8_string');
my $tree = MaxMind::DB::Writer::Tree->new(
    ip_version => 6, record_size => 24, database_type => 'GeoIP2-Country',
    languages => ['en'], description => { en => 'mxacl test database' },
    remove_reserved_networks => 0, alias_ipv6_to_ipv4 => 1,
    map_key_type_callback => sub { $types{ $_[0] } },
);
for my $arg (@ARGV) {
    my ($net, $spec) = split /=/, $arg, 2;
    my ($cc, $cont, $reg) = split /:/, $spec;
    my %rec;
    $rec{ $reg ? 'registered_country' : 'country' } = { iso_code => $cc };
    $rec{continent} = { code => $cont } if $cont;
    $tree->insert_network($net, \%rec);
}
open my $fh, '>:raw', $out or die "$out: $!\n";
$tree->write_tree($fh);
close $fh or die "$out: $!\n";
